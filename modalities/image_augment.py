"""Training-time image augmentation: a batched random affine (zoom out, shift, turn) drawn from a ``torch.Generator``.

It works on preprocessed (normalised) images ``[..., C, H, W]`` on their own device, one draw per image, so it runs
in the training step, not in the loader workers. Its use: an anchor trained on centred, frame-filling pictures (a
digit scan) meets the same content small and anywhere in the frame elsewhere (a video frame); zooming out and
shifting the anchor's images during training makes those in-distribution. Inference never augments.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .random_draws import uniform

PADDING_MODES = ("border", "zeros", "reflection")


@dataclass
class RandomAffine:
    """Shrink each image by a factor uniform in [``min_scale``, ``max_scale``], turn it by an angle uniform in
    ±``degrees``, and move it by a uniform share of the margin the shrinking frees (``translate`` = 1: anywhere it
    still fits in the frame; 0: centred). Pixels from outside the image follow ``padding`` (``border`` repeats the
    edge pixels: the background of a scan; ``zeros`` is the normalised mean colour)."""

    min_scale: float = 0.5
    max_scale: float = 1.0
    translate: float = 1.0
    degrees: float = 0.0
    padding: str = "border"

    def __post_init__(self) -> None:
        if not 0 < self.min_scale <= self.max_scale:
            raise ValueError(f"RandomAffine: need 0 < min_scale <= max_scale, got {self.min_scale}, {self.max_scale}")
        if not 0 <= self.translate <= 1:
            raise ValueError(f"RandomAffine: translate is a share of the free margin in [0, 1], got {self.translate}")
        if self.padding not in PADDING_MODES:
            raise ValueError(f"RandomAffine: padding must be one of {', '.join(PADDING_MODES)}, got '{self.padding}'")

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """``[..., C, H, W]`` → the same shape and dtype, each image (over the leading dims) drawn on its own."""
        flat = images.reshape(-1, *images.shape[-3:])
        b = flat.shape[0]
        draws = uniform((b, 4), generator, flat.device)
        scale = self.min_scale + (self.max_scale - self.min_scale) * draws[:, 0]
        angle = (draws[:, 1] * 2 - 1) * math.radians(self.degrees)
        # grid coordinates span [-1, 1]: a picture shrunk by s can move by up to 1 - s before it leaves the frame
        shift = (draws[:, 2:] * 2 - 1) * self.translate * (1 - scale)[:, None]
        theta = output_to_input(scale, angle, shift)
        grid = F.affine_grid(theta, list(flat.shape), align_corners=False)
        out = F.grid_sample(flat.float(), grid, mode="bilinear", padding_mode=self.padding, align_corners=False)
        return out.to(images.dtype).reshape(images.shape)


def output_to_input(scale: torch.Tensor, angle: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """``affine_grid``'s θ ``[B, 2, 3]`` for content mapped by x_out = s · R(angle) · x_in + shift: it is the inverse,
    x_in = Rᵀ (x_out − shift) / s, since the grid says where each output pixel reads from."""
    cos, sin = angle.cos(), angle.sin()
    inverse = torch.stack([torch.stack([cos, sin], -1), torch.stack([-sin, cos], -1)], -2) / scale[:, None, None]
    offset = -(inverse @ shift[:, :, None])
    return torch.cat([inverse, offset], dim=-1)
