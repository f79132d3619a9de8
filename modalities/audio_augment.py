"""Training-time spectrogram augmentation: speed and vocal-tract warps, then SpecAugment masks, batched.

It works on model-ready filterbanks ``[..., n_mels, T]`` (normalised: 0 is the mean and the padding value) on
their own device, one draw per spectrogram, so it runs in the training step, not in the loader workers.

* **time stretch** (speed perturbation, Ko et al. 2015): the frames are resampled by a factor uniform in
  ``time_stretch``; a stretched utterance runs past the end and is cut, a squeezed one is padded with 0.
* **frequency warp** (vocal tract length perturbation, Jaitly & Hinton 2013): the mel axis is scaled about its
  lowest bin by a factor uniform in ``freq_warp`` (a longer or shorter vocal tract moves every formant by a
  common factor); bins read from above the top repeat the top bin.
* **masks** (SpecAugment, Park et al. 2019): ``freq_masks`` bands of up to ``freq_mask`` mel bins and
  ``time_masks`` spans of up to ``time_mask`` frames set to 0.

Their use: a speech model that learns from few speakers must meet new ones, whose pitch, formants and tempo differ;
warping and masking make those differences part of training. Inference never augments.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from .random_draws import check_range, uniform


@dataclass
class SpecAugment:
    """Stretch by ``time_stretch`` [low, high], warp by ``freq_warp`` [low, high] (``[1, 1]``: off), then mask
    ``freq_masks`` × up to ``freq_mask`` bins and ``time_masks`` × up to ``time_mask`` frames (0 masks: off)."""

    time_stretch: list[float] = field(default_factory=lambda: [0.9, 1.1])
    freq_warp: list[float] = field(default_factory=lambda: [0.9, 1.1])
    freq_masks: int = 2
    freq_mask: int = 8
    time_masks: int = 2
    time_mask: int = 10

    def __post_init__(self) -> None:
        for name in ("time_stretch", "freq_warp"):
            check_range("SpecAugment", name, getattr(self, name))
        for name in ("freq_masks", "freq_mask", "time_masks", "time_mask"):
            if getattr(self, name) < 0:
                raise ValueError(f"SpecAugment: {name} must be >= 0, got {getattr(self, name)}")

    def __call__(self, spectrograms: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """``[..., M, T]`` → the same shape and dtype, each spectrogram (over the leading dims) drawn on its own."""
        flat = spectrograms.reshape(-1, 1, *spectrograms.shape[-2:]).float()
        b = flat.shape[0]
        out = flat
        if self.time_stretch != [1, 1] or self.freq_warp != [1, 1]:  # off: no resampling at all, not an identity one
            stretch = uniform((b,), generator, flat.device, low=self.time_stretch[0], high=self.time_stretch[1])
            freq = uniform((b,), generator, flat.device, low=self.freq_warp[0], high=self.freq_warp[1])
            out = warp(flat, stretch, freq)
        out = mask_spans(out, self.freq_masks, self.freq_mask, axis=2, generator=generator)
        out = mask_spans(out, self.time_masks, self.time_mask, axis=3, generator=generator)
        return out.to(spectrograms.dtype).reshape(spectrograms.shape)


def warp(flat: torch.Tensor, stretch: torch.Tensor, freq: torch.Tensor) -> torch.Tensor:
    """``[B, 1, M, T]`` with content moved from frame τ to τ · ``stretch`` and from bin f to f · ``freq`` (both
    ``[B]``, about the first frame and the lowest bin); frames from past the end are 0 (the padding value), bins
    from past the top repeat the top bin (a spectrum does not end in silence)."""
    b, _, m, t = flat.shape
    bins = torch.arange(m, device=flat.device, dtype=flat.dtype)
    frames = torch.arange(t, device=flat.device, dtype=flat.dtype)
    # output index i reads input index i / factor; align_corners=False puts index i at (2i + 1) / n − 1
    y = (2 * (bins[None, :] / freq[:, None]).clamp(max=m - 1) + 1) / m - 1   # [B, M]
    x = (2 * frames[None, :] / stretch[:, None] + 1) / t - 1                 # [B, T]
    grid = torch.stack([x[:, None, :].expand(b, m, t), y[:, :, None].expand(b, m, t)], dim=-1)  # [B, M, T, 2]
    return F.grid_sample(flat, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def mask_spans(flat: torch.Tensor, count: int, width: int, axis: int, generator: torch.Generator) -> torch.Tensor:
    """``[B, 1, M, T]`` with ``count`` spans of a width uniform in [0, ``width``] set to 0 along ``axis`` (2: mel
    bins, 3: frames), each at a uniform start."""
    if count == 0 or width == 0:
        return flat
    b, size = flat.shape[0], flat.shape[axis]
    draws = uniform((b, count, 2), generator, flat.device)
    widths = (draws[..., 0] * (min(width, size) + 1)).floor()           # [B, count] in 0 … width
    starts = (draws[..., 1] * (size - widths + 1)).floor()              # [B, count]
    index = torch.arange(size, device=flat.device)[None, None, :]       # [1, 1, size]
    hit = ((index >= starts[..., None]) & (index < (starts + widths)[..., None])).any(dim=1)  # [B, size]
    shape = [b, 1, 1, 1]
    shape[axis] = size
    return flat.masked_fill(hit.reshape(shape), 0.0)
