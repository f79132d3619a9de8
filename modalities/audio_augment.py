"""Training-time spectrogram augmentation: speed and vocal-tract warps, then SpecAugment masks, batched.

It works on model-ready filterbanks ``[..., n_mels, T]`` (normalised: 0 is the mean and the padding value) on
their own device, one draw per spectrogram, so it runs in the training step, not in the loader workers.

* **time stretch** (speed perturbation, Ko et al. 2015): the frames are resampled by a factor uniform in
  ``time_stretch``; a stretched utterance runs past the end and is cut, a squeezed one is padded with 0.
* **frequency warp** (vocal tract length perturbation, Jaitly & Hinton 2013): the mel axis is scaled about its
  lowest bin by a factor uniform in ``freq_warp`` (a longer or shorter vocal tract moves every formant by a
  common factor); bins read from above the top repeat the top bin.
* **spectral smoothing**: the mel axis blurred by a Gaussian of σ uniform in [0, ``freq_smooth``] bins, which
  smears the harmonics of the voice's pitch into its formant envelope — how the sound source differs between
  voices (a formant synthesiser's pulse train, a whisper's noise, a person's glottis) matters less than what the
  vocal tract says;
* **reverb**: each frame becomes the larger of itself and the previous output frame lowered by a fixed step, a
  log-domain exponential tail (a room's decay) lasting up to ``reverb`` frames to fall by :data:`REVERB_DROP`;
* **noise**: a noise floor at a level uniform in [:data:`NOISE_FLOOR`, :data:`NOISE_FLOOR` + ``noise``] (with
  per-cell spread :data:`NOISE_SPREAD`) is mixed in by a log-domain sum, as additive noise is in power;
* **masks** (SpecAugment, Park et al. 2019): ``freq_masks`` bands of up to ``freq_mask`` mel bins and
  ``time_masks`` spans of up to ``time_mask`` frames set to 0.

Their use: a speech model that learns from few speakers must meet new ones, whose pitch, formants and tempo differ,
in other rooms and with other noise; warping, smearing, noising and masking make those differences part of
training. (A stationary channel — a telephone band, a microphone's colour — is a constant per mel bin in the log
domain, which the per-clip normalisation of the features already removes.) Levels are in the normalised units of
the features (about one standard deviation of a bin over a clip). Inference never augments.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from .random_draws import check_range, normal, uniform

REVERB_DROP = 3.0
"""How far (normalised units) a reverb tail falls over its length: below a bin's typical range, i.e. gone."""
NOISE_FLOOR, NOISE_SPREAD = -2.0, 0.3
"""The quietest noise floor drawn (normalised units: two standard deviations below a bin's clip mean), and the
spread of the noise about its floor from cell to cell."""


@dataclass
class SpecAugment:
    """Stretch by ``time_stretch`` [low, high], warp by ``freq_warp`` [low, high] (``[1, 1]``: off), smooth the
    mel axis by up to ``freq_smooth`` bins (0: off), add a reverb
    tail of up to ``reverb`` frames and a noise floor up to ``noise`` above the quietest (0: off), then mask
    ``freq_masks`` × up to ``freq_mask`` bins and ``time_masks`` × up to ``time_mask`` frames (0 masks: off)."""

    time_stretch: list[float] = field(default_factory=lambda: [0.9, 1.1])
    freq_warp: list[float] = field(default_factory=lambda: [0.9, 1.1])
    freq_masks: int = 2
    freq_mask: int = 8
    time_masks: int = 2
    time_mask: int = 10
    freq_smooth: float = 0.0
    reverb: float = 0.0
    noise: float = 0.0

    def __post_init__(self) -> None:
        for name in ("time_stretch", "freq_warp"):
            check_range("SpecAugment", name, getattr(self, name))
        for name in ("freq_masks", "freq_mask", "time_masks", "time_mask", "freq_smooth", "reverb", "noise"):
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
        if self.freq_smooth > 0:
            out = smooth_bins(out, uniform((b,), generator, flat.device) * self.freq_smooth)
        if self.reverb > 0:
            out = reverberate(out, uniform((b,), generator, flat.device, low=1.0, high=max(1.0, self.reverb)))
        if self.noise > 0:
            level = uniform((b, 1, 1, 1), generator, flat.device, low=NOISE_FLOOR, high=NOISE_FLOOR + self.noise)
            out = torch.logaddexp(out, level + NOISE_SPREAD * normal(tuple(out.shape), generator, flat.device))
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


def smooth_bins(flat: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """``[B, 1, M, T]`` blurred along the mel axis by a Gaussian of ``sigma`` ``[B]`` bins each (edges
    replicated; 0: unchanged)."""
    b, _, m, t = flat.shape
    radius = max(1, min(m - 1, int(torch.ceil(3 * sigma.max()).item())))
    offsets = torch.arange(-radius, radius + 1, device=flat.device, dtype=flat.dtype)
    weights = torch.exp(-offsets[None, :] ** 2 / (2 * sigma[:, None].clamp(min=1e-3) ** 2))     # [B, K]
    weights = weights / weights.sum(dim=1, keepdim=True)
    padded = F.pad(flat.reshape(1, b, m, t), (0, 0, radius, radius), mode="replicate")
    return F.conv2d(padded, weights[:, None, :, None], groups=b).reshape(b, 1, m, t)


def reverberate(flat: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
    """``[B, 1, M, T]`` with each frame raised to the previous output frame minus a step, so every onset leaves a
    tail that falls by :data:`REVERB_DROP` over ``frames`` ``[B]`` frames (a log-domain exponential decay)."""
    step = (REVERB_DROP / frames)[:, None, None]                                    # [B, 1, 1]
    columns = [flat[..., 0]]
    for t in range(1, flat.shape[-1]):
        columns.append(torch.maximum(flat[..., t], columns[-1] - step))
    return torch.stack(columns, dim=-1)


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
