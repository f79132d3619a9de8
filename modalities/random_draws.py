"""Random numbers and range checks shared by the batched training augmentations (image, audio, point clouds).

Numbers are drawn on the generator's device and then moved, so one seeded CPU generator gives the same
augmentations on CPU and GPU.
"""

from __future__ import annotations

import torch


def uniform(shape: tuple[int, ...], generator: torch.Generator, device: torch.device,
            dtype: torch.dtype = torch.float32, low: float = 0.0, high: float = 1.0) -> torch.Tensor:
    """``shape`` numbers uniform in [``low``, ``high``) on ``device``."""
    draw = torch.rand(shape, generator=generator, device=generator.device).to(device, dtype)
    return draw if (low, high) == (0.0, 1.0) else low + (high - low) * draw


def normal(shape: tuple[int, ...], generator: torch.Generator, device: torch.device,
           dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``shape`` standard normal numbers on ``device``."""
    return torch.randn(shape, generator=generator, device=generator.device).to(device, dtype)


def check_range(owner: str, name: str, bounds: list[float]) -> None:
    """Refuse a factor range that is not ``[low, high]`` with ``0 < low <= high`` (ValueError naming it)."""
    if len(bounds) != 2 or not 0 < bounds[0] <= bounds[1]:
        raise ValueError(f"{owner}: {name} must be [low, high] with 0 < low <= high, got {bounds}")
