"""Training-time augmentation of scanned digits: what changes between scan sources, batched on the device.

Two collections of handwritten digits differ less in the digits than in how they were scanned and framed: MNIST
centres a 20-pixel box in 28 × 28 by the centre of mass, other collections stretch each digit to fill the frame
(whatever its aspect), scan at 16 × 16 or 8 × 8, binarise, blur, or store dark ink on light paper. A model that has
seen one collection only learns its framing and its pen. :class:`ScanAugment` draws each of those changes per
image, in this order:

1. **framing** — either the zoom-out / shift / turn of :class:`~.image_augment.RandomAffine` (a small digit
   anywhere in the frame, as in a video frame), or, with probability ``reframe``, the digit's ink box cropped and
   stretched to fill the frame: its aspect changed by a factor log-uniform in ``aspect``, its longer side filling
   a share uniform in ``fill`` of the frame — or, for a ``stretch`` share of those, each side filling it on its
   own whatever the digit's aspect, as collections that size-normalise the two axes apart do (a "1" becomes a
   wide bar; UCI's 8 × 8 optdigits, Semeion's 16 × 16); in the same resampling, the hand: a slant (shear of
   x against y, angle uniform in ±``shear`` degrees) and an elastic distortion (Simard et al. 2003: a smooth
   random displacement field, a ``elastic_cells`` × ``elastic_cells`` grid of uniform offsets of at most
   ``elastic`` of the frame each, interpolated bicubically), so rendered or few-writer digits vary as many
   writers' do;
2. **stroke width** — a blend towards a 3 × 3 dilation (thicker pen) or erosion (thinner), strength uniform in
   ±``stroke`` (erosion at half strength);
3. **resolution** — with probability ``low_res``, resampled down to a side uniform in ``low_res_sizes`` pixels
   (antialiased) and back up;
4. **blur** — a Gaussian of σ uniform in [0, ``blur``] pixels; then each image is stretched back to full
   contrast, as a scanner's levels do;
5. **binarisation** — with probability ``binarise``, thresholded at a level uniform in [0.3, 0.6] of the range;
6. **polarity** — with probability ``invert``, dark ink on a light background;
7. **noise** — Gaussian, σ uniform in [0, ``noise``] of the range.

It works on preprocessed (normalised) images ``[..., C, H, W]`` whose ink is lighter than the background (as the
training sources store it); each image is mapped to [0, 1] by its own minimum and maximum, changed, and mapped
back, so it needs no knowledge of the model's mean and std. Inference never augments.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from .image_augment import RandomAffine, output_to_input
from .random_draws import check_range, normal, uniform

INK_LEVEL = 0.5
"""Share of an image's range above which a pixel is ink (the ink box of the reframing)."""
BINARY_LEVELS = (0.3, 0.6)
"""Range of the binarisation threshold, as a share of the image's range."""


@dataclass
class ScanAugment:
    """Framing, hand (slant, elastic), stroke width, resolution, blur, binarisation, polarity and noise of scanned
    digits (see module). Probabilities in [0, 1]; ``shear`` (degrees), ``elastic`` (share of the frame), ``stroke``,
    ``blur`` (pixels) and ``noise`` (share of the range) ≥ 0; 0 turns each off."""

    min_scale: float = 0.4
    max_scale: float = 1.0
    translate: float = 1.0
    degrees: float = 10.0
    reframe: float = 0.3
    stretch: float = 0.0
    aspect: list[float] = field(default_factory=lambda: [0.6, 1.7])
    fill: list[float] = field(default_factory=lambda: [0.8, 1.0])
    shear: float = 0.0
    elastic: float = 0.0
    elastic_cells: int = 3
    stroke: float = 1.0
    low_res: float = 0.3
    low_res_sizes: list[int] = field(default_factory=lambda: [8, 20])
    blur: float = 1.0
    binarise: float = 0.2
    invert: float = 0.0
    noise: float = 0.05

    def __post_init__(self) -> None:
        self.affine = RandomAffine(self.min_scale, self.max_scale, self.translate, self.degrees, padding="zeros")
        check_range("ScanAugment", "aspect", self.aspect)
        check_range("ScanAugment", "fill", self.fill)
        check_range("ScanAugment", "low_res_sizes", self.low_res_sizes)
        if self.fill[1] > 1:
            raise ValueError(f"ScanAugment: fill is a share of the frame, at most 1, got {self.fill}")
        for name in ("reframe", "stretch", "low_res", "binarise", "invert"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"ScanAugment: {name} is a probability in [0, 1], got {getattr(self, name)}")
        if self.elastic_cells < 1:
            raise ValueError(f"ScanAugment: elastic_cells must be >= 1, got {self.elastic_cells}")
        if not 0 <= self.shear < 90:
            raise ValueError(f"ScanAugment: shear is an angle in [0, 90) degrees, got {self.shear}")
        for name in ("stroke", "blur", "noise", "elastic"):
            if getattr(self, name) < 0:
                raise ValueError(f"ScanAugment: {name} must be >= 0, got {getattr(self, name)}")

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """``[..., C, H, W]`` → the same shape and dtype, each image (over the leading dims) drawn on its own."""
        flat = images.reshape(-1, *images.shape[-3:]).float()
        b, device = flat.shape[0], flat.device
        low = flat.amin(dim=(1, 2, 3), keepdim=True)
        span = (flat.amax(dim=(1, 2, 3), keepdim=True) - low).clamp(min=1e-6)
        u = (flat - low) / span                                                    # [B, C, H, W] in [0, 1]
        # every draw is made whether or not its step is on, so a setting changes only its own step's numbers
        draws = uniform((b, 12), generator, device)
        u = self._frame(u, draws[:, :5], generator)
        u = change_stroke(u, (draws[:, 5] * 2 - 1) * self.stroke)
        u = resample_low(u, draws[:, 6] < self.low_res, self._sizes(draws[:, 7]))
        u = gaussian_blur(u, draws[:, 8] * self.blur)
        # a scanner's levels stretch each scan to full contrast: a thinned, blurred or shrunk digit stays visible
        u = u / u.amax(dim=(1, 2, 3), keepdim=True).clamp(min=1e-6)
        level = BINARY_LEVELS[0] + (BINARY_LEVELS[1] - BINARY_LEVELS[0]) * draws[:, 9]
        u = torch.where((draws[:, 10] < self.binarise)[:, None, None, None], (u > level[:, None, None, None]).float(), u)
        u = torch.where((draws[:, 11] < self.invert)[:, None, None, None], 1 - u, u)
        sigma = uniform((b, 1, 1, 1), generator, device) * self.noise
        u = (u + sigma * normal(tuple(u.shape), generator, device)).clamp(0, 1)
        return (low + u * span).to(images.dtype).reshape(images.shape)

    def _sizes(self, draws: torch.Tensor) -> torch.Tensor:
        low, high = self.low_res_sizes
        return (low + draws * (high - low + 1)).floor().clamp(max=high).long()

    def _frame(self, u: torch.Tensor, draws: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """The affine zoom-out for most images, the ink box stretched to the frame for a ``reframe`` share."""
        b = u.shape[0]
        scale = self.min_scale + (self.max_scale - self.min_scale) * draws[:, 0]
        angle = (draws[:, 1] * 2 - 1) * math.radians(self.degrees)
        shift = (draws[:, 2:4] * 2 - 1) * self.translate * (1 - scale)[:, None]
        theta = output_to_input(scale, angle, shift)
        aspect = uniform((b,), generator, u.device, low=math.log(self.aspect[0]), high=math.log(self.aspect[1])).exp()
        fill = uniform((b,), generator, u.device, low=self.fill[0], high=self.fill[1])
        stretched = uniform((b,), generator, u.device) < self.stretch
        theta = torch.where((draws[:, 4] < self.reframe)[:, None, None], fill_frame(u, aspect, fill, stretched), theta)
        grid = F.affine_grid(theta, list(u.shape), align_corners=False)
        if self.shear or self.elastic:
            grid = grid + self._hand(b, u.shape[-2:], grid, generator)
        return F.grid_sample(u, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

    def _hand(self, b: int, size: torch.Size, grid: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Offsets ``[B, H, W, 2]`` added to the sampling ``grid`` ``[B, H, W, 2]``: the slant (input x moves
        by tan(angle) · output y) plus the elastic field, in grid units (the frame spans 2)."""
        slant = (uniform((b,), generator, grid.device) * 2 - 1) * math.radians(self.shear)
        cells = self.elastic_cells + 1
        coarse = (uniform((b, 2, cells, cells), generator, grid.device) * 2 - 1) * (2 * self.elastic)
        field = F.interpolate(coarse, size=tuple(size), mode="bicubic", align_corners=True)    # [B, 2, H, W]
        offsets = field.permute(0, 2, 3, 1).contiguous()
        offsets[..., 0] += slant.tan()[:, None, None] * grid[..., 1]
        return offsets


def ink_box(u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``[B, C, H, W]`` in [0, 1] → the ink box's centre and half-size ``[B, 2]`` (x, y) in grid coordinates
    ([-1, 1] over the frame's edges); an image without ink gives the whole frame."""
    ink = u.amax(dim=1) > INK_LEVEL                                                 # [B, H, W]
    centres, halves = [], []
    for axis, size in ((1, u.shape[-1]), (2, u.shape[-2])):                        # x: any ink in a column
        present = ink.any(dim=axis)                                                 # [B, size]
        index = torch.arange(size, device=u.device)
        first = torch.where(present, index, size).amin(dim=1)
        last = torch.where(present, index, -1).amax(dim=1)
        empty = first > last
        first, last = torch.where(empty, 0, first), torch.where(empty, size - 1, last)
        left, right = 2 * first / size - 1, 2 * (last + 1) / size - 1
        centres.append((left + right) / 2)
        halves.append((right - left) / 2)
    return torch.stack(centres, -1).float(), torch.stack(halves, -1).float()


def fill_frame(u: torch.Tensor, aspect: torch.Tensor, fill: torch.Tensor,
               stretched: torch.Tensor | None = None) -> torch.Tensor:
    """``affine_grid``'s θ ``[B, 2, 3]`` that maps each image's ink box to a centred box whose width/height is the
    ink box's times ``aspect`` ``[B]`` and whose longer side spans ``fill`` ``[B]`` of the frame; for the
    ``stretched`` ``[B]`` (bool) images both sides span ``fill``, whatever the ink box's aspect."""
    centre, half = ink_box(u)
    ratio = half[:, 0] / half[:, 1] * aspect                                        # output width / height
    if stretched is not None:
        ratio = torch.where(stretched, torch.ones_like(ratio), ratio)
    out_x = torch.where(ratio >= 1, fill, fill * ratio)
    out_y = torch.where(ratio >= 1, fill / ratio, fill)
    # output x reads input centre + x · half_in / half_out (the output box is centred on 0)
    gain = half / torch.stack([out_x, out_y], -1)                                   # [B, 2]
    theta = torch.zeros(u.shape[0], 2, 3, device=u.device)
    theta[:, 0, 0], theta[:, 1, 1] = gain[:, 0], gain[:, 1]
    theta[:, :, 2] = centre
    return theta


def change_stroke(u: torch.Tensor, strength: torch.Tensor) -> torch.Tensor:
    """``[B, C, H, W]`` blended towards its 3 × 3 dilation by ``strength`` ``[B]`` > 0, towards its erosion by
    −``strength`` / 2 when < 0: bright ink thickens by up to a pixel each side, or thins by up to half one (a full
    erosion wipes out the two-pixel strokes of a small digit)."""
    dilated, eroded = max_3x3(u), -max_3x3(-u)
    s = strength[:, None, None, None]
    return torch.where(s >= 0, u + s * (dilated - u), u - s / 2 * (eroded - u))


def max_3x3(u: torch.Tensor) -> torch.Tensor:
    """``[B, C, H, W]`` → the maximum over each pixel's 3 × 3 neighbourhood (inside the image), as two 3-wide
    passes: the same as ``max_pool2d(u, 3, 1, 1)``, an order of magnitude faster on a CPU."""
    low = torch.finfo(u.dtype).min
    p = F.pad(u, (1, 1, 0, 0), value=low)
    rows = torch.maximum(torch.maximum(p[..., :-2], p[..., 1:-1]), p[..., 2:])
    p = F.pad(rows, (0, 0, 1, 1), value=low)
    return torch.maximum(torch.maximum(p[..., :-2, :], p[..., 1:-1, :]), p[..., 2:, :])


def resample_low(u: torch.Tensor, chosen: torch.Tensor, sizes: torch.Tensor) -> torch.Tensor:
    """``[B, C, H, W]`` with the ``chosen`` ``[B]`` images resampled to ``sizes`` ``[B]`` pixels a side
    (antialiased, as a low-resolution scanner sees them) and back to H × W."""
    out = u.clone()
    for size in sizes[chosen].unique().tolist():
        rows = chosen & (sizes == size)
        small = F.interpolate(u[rows], size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        out[rows] = F.interpolate(small, size=u.shape[-2:], mode="bilinear", align_corners=False)
    return out


def gaussian_blur(u: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """``[B, C, H, W]`` blurred by a separable Gaussian of ``sigma`` ``[B]`` pixels each (0: unchanged)."""
    b, c, h, w = u.shape
    radius = max(1, math.ceil(3 * float(sigma.max()))) if len(sigma) else 1
    offsets = torch.arange(-radius, radius + 1, device=u.device, dtype=u.dtype)
    weights = torch.exp(-offsets[None, :] ** 2 / (2 * sigma[:, None].clamp(min=1e-3) ** 2))  # [B, K]
    weights = (weights / weights.sum(dim=1, keepdim=True)).repeat_interleave(c, dim=0)     # [B·C, K]
    x = F.pad(u.reshape(1, b * c, h, w), (radius, radius, radius, radius), mode="replicate")
    x = F.conv2d(x, weights[:, None, :, None], groups=b * c)                          # along H
    x = F.conv2d(x, weights[:, None, None, :], groups=b * c)                          # along W
    return x.reshape(b, c, h, w)
