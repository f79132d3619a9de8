"""Training-time point-cloud augmentations: batched, composable torch transforms drawn from a ``torch.Generator``.

Every transform maps preprocessed clouds ``[B, N, 3 + E]`` to new clouds of the same shape, with its own random
draw per cloud, on the clouds' device (the numbers are drawn on the generator's device, so one seeded CPU
generator gives the same augmentations on CPU and GPU). Channels 0–2 are xyz; with ``normals=True`` channels
3–5 are unit normals and turn with the points (and are re-normalised after a per-axis scale); otherwise the
extra channels (colours) are left alone. Inference never augments: these are used by training loaders only.

Defaults: PointNet++'s rotation about the up axis (y in ShapeNet and ModelNet), jitter (σ = 0.01, clipped to
±0.05) and point dropout (up to 87.5 % of the points, replaced by copies of the cloud's first point, so N stays
fixed), and Point-BERT's per-axis scale in [2/3, 3/2].
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Protocol

import torch
import torch.nn.functional as F

from .random_draws import normal, uniform

FACE_QUANTILE = 0.95
"""Where :class:`SlabFaces` puts a slab's faces: this quantile of the points' distance from its mid-plane (the
largest would follow the jitter's outliers)."""
OUTLINE_WIDTH = 0.25
"""The neighbourhood :class:`Outline` weighs a point's surroundings over: a Gaussian whose σ is this share of the
cloud's RMS in-plane radius (on a digit about a stroke's width: wide enough to average over a few dozen points
of 512, narrow enough not to reach the next stroke)."""
OUTLINE_CHUNK = 4
"""Clouds :class:`Outline` scores at once: their ``[4, N, N]`` weights (4 MB at N = 512) stay in a CPU's cache,
which makes a batch ~4× faster than all clouds at once."""


class PointTransform(Protocol):
    def __call__(self, clouds: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """[B, N, 3 + E] → [B, N, 3 + E]."""


def _with_xyz(clouds: torch.Tensor, xyz: torch.Tensor, normals: torch.Tensor | None = None) -> torch.Tensor:
    """``clouds`` with channels 0–2 replaced by ``xyz`` (and 3–5 by ``normals`` when given)."""
    parts = [xyz] + ([normals, clouds[..., 6:]] if normals is not None else [clouds[..., 3:]])
    return torch.cat(parts, dim=-1)


@dataclass
class RotateUp:
    """Rotate each cloud by an angle uniform in [−max_angle, max_angle] radians about axis ``up_axis``."""

    up_axis: int = 1
    max_angle: float = math.pi
    normals: bool = False

    def __call__(self, clouds: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        b = clouds.shape[0]
        angle = (uniform((b,), generator, clouds.device, clouds.dtype) * 2 - 1) * self.max_angle
        cos, sin = angle.cos(), angle.sin()
        a, c = (self.up_axis + 1) % 3, (self.up_axis + 2) % 3  # the plane turned, right-handed about up
        rotation = torch.zeros(b, 3, 3, dtype=clouds.dtype, device=clouds.device)
        rotation[:, self.up_axis, self.up_axis] = 1
        rotation[:, a, a], rotation[:, a, c] = cos, -sin
        rotation[:, c, a], rotation[:, c, c] = sin, cos
        turn = rotation.transpose(1, 2)  # row vectors: p' = p Rᵀ
        return _with_xyz(clouds, clouds[..., :3] @ turn, clouds[..., 3:6] @ turn if self.normals else None)


@dataclass
class RandomScale:
    """Scale each cloud by factors uniform in [low, high]: one per axis (``anisotropic``) or one for all."""

    low: float = 2 / 3
    high: float = 3 / 2
    anisotropic: bool = True
    normals: bool = False

    def __call__(self, clouds: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        b = clouds.shape[0]
        axes = 3 if self.anisotropic else 1
        scale = uniform((b, 1, axes), generator, clouds.device, clouds.dtype, self.low, self.high)
        # normals of a surface scaled by S turn by S⁻¹ (then are unit again)
        normals = F.normalize(clouds[..., 3:6] / scale, dim=-1) if self.normals else None
        return _with_xyz(clouds, clouds[..., :3] * scale, normals)


@dataclass
class SlabDepth:
    """Scale each cloud along its thinnest principal axis (about its centroid) by a factor log-uniform in [low,
    high]: a shape lifted from a drawing or a scan into a slab gets another slab thickness, whatever way the
    slab has been turned."""

    low: float = 0.5
    high: float = 2.0
    normals: bool = False

    def __call__(self, clouds: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        b = clouds.shape[0]
        centre, centred, thin = thinnest_axis(clouds[..., :3])
        factor = uniform((b, 1, 1), generator, clouds.device, clouds.dtype, math.log(self.low),
                         math.log(self.high)).exp()
        along = thin[:, :, None] * thin[:, None, :]                                 # [B, 3, 3] projector
        eye = torch.eye(3, dtype=clouds.dtype, device=clouds.device)
        stretch = eye + (factor - 1) * along                                        # symmetric: p' = p S
        # normals of a surface stretched by S turn by S⁻¹ (then are unit again)
        normals = F.normalize(clouds[..., 3:6] @ (eye + (1 / factor - 1) * along), dim=-1) if self.normals else None
        return _with_xyz(clouds, centre + centred @ stretch, normals)


def thinnest_axis(xyz: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``[B, N, 3]`` → each cloud's centroid ``[B, 1, 3]``, its points about it ``[B, N, 3]`` and its thinnest
    principal axis ``[B, 3]`` (the covariance's eigenvector of the smallest eigenvalue, unit length)."""
    centre = xyz.mean(dim=1, keepdim=True)
    centred = xyz - centre
    covariance = centred.transpose(1, 2) @ centred / xyz.shape[1]                   # [B, 3, 3]
    return centre, centred, torch.linalg.eigh(covariance.float())[1][..., 0].to(xyz.dtype)


@dataclass
class SlabFaces:
    """With probability ``p``, move each point of a cloud along its thinnest principal axis onto the nearer of the
    slab's two faces (at ± the 95th percentile of the points' distance from the mid-plane): the volume of a slab
    becomes its front and back surfaces, as a mesh's surface sampler gives for a shape extruded from a drawing.
    With ``normals`` the moved points' normals become the faces' (± the axis)."""

    p: float = 0.5
    normals: bool = False

    def __call__(self, clouds: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        b = clouds.shape[0]
        chosen = uniform((b, 1, 1), generator, clouds.device, clouds.dtype) < self.p
        centre, centred, thin = thinnest_axis(clouds[..., :3])
        height = (centred * thin[:, None, :]).sum(dim=-1, keepdim=True)              # [B, N, 1] from the mid-plane
        face = torch.quantile(height.abs().float(), FACE_QUANTILE, dim=1, keepdim=True).to(clouds.dtype)
        side = torch.where(height >= 0, 1.0, -1.0).to(clouds.dtype)                  # [B, N, 1]
        moved = centre + centred + (side * face - height) * thin[:, None, :]
        xyz = torch.where(chosen, moved, clouds[..., :3])
        normals = torch.where(chosen, side * thin[:, None, :], clouds[..., 3:6]) if self.normals else None
        return _with_xyz(clouds, xyz, normals)


@dataclass
class Outline:
    """With probability ``p``, keep only the points on a cloud's outline as seen along its thinnest principal axis and
    put copies of them, drawn at random, in the other slots: a shape sampled on its contour (a mesh's surface
    sampler on a shape extruded from a drawing, an edge detector's output) instead of through its filled strokes.
    A point's outline score is how far it lies, in the plane across that axis, from the Gaussian-weighted centroid
    of the points around it (:data:`OUTLINE_WIDTH`): about 0 inside a filled region, largest at its edges; the
    ``keep`` share of points with the largest scores is kept. Every channel moves with its point."""

    p: float = 0.5
    keep: float = 0.6

    def __call__(self, clouds: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        b, n = clouds.shape[:2]
        keep = max(1, round(self.keep * n))
        chosen = (uniform((b,), generator, clouds.device) < self.p).nonzero()[:, 0]  # [C] the clouds outlined
        source = (uniform((b, n), generator, clouds.device) * keep).floor().long()  # [B, N] a kept rank per slot
        index = torch.arange(n, device=clouds.device).repeat(b, 1)                   # [B, N] each slot's point
        if len(chosen):
            order = outline_order(clouds[chosen, :, :3])                             # [C, N] edge-most first
            rank = torch.empty_like(order).scatter_(1, order, index[chosen])         # [C, N] each point's rank
            index[chosen] = torch.where(rank < keep, index[chosen], order.gather(1, source[chosen]))
        return clouds.gather(1, index[..., None].expand_as(clouds))


def outline_order(xyz: torch.Tensor) -> torch.Tensor:
    """``[B, N, 3]`` → ``[B, N]`` point indices from the most to the least outline-like (see :class:`Outline`), for
    :data:`OUTLINE_CHUNK` clouds at a time."""
    return torch.cat([_outline_order(chunk) for chunk in xyz.split(OUTLINE_CHUNK)])


def _outline_order(xyz: torch.Tensor) -> torch.Tensor:
    _, centred, thin = thinnest_axis(xyz)
    planar = centred - (centred * thin[:, None, :]).sum(-1, keepdim=True) * thin[:, None, :]      # [B, N, 3]
    square = planar.square().sum(-1)                                                             # [B, N]
    width = OUTLINE_WIDTH * square.mean(-1).sqrt()[:, None, None]                                # [B, 1, 1]
    distance2 = (square[:, :, None] + square[:, None, :] - 2 * planar @ planar.transpose(1, 2)).clamp_min(0)
    weight = torch.exp(distance2 / (-2 * width.square()))                                        # [B, N, N]
    centroid = weight @ planar / weight.sum(-1, keepdim=True)                                    # [B, N, 3]
    return (planar - centroid).norm(dim=-1).argsort(dim=1, descending=True)


@dataclass
class Jitter:
    """Add Gaussian noise of std ``sigma`` to every coordinate, clipped to ±``clip``."""

    sigma: float = 0.01
    clip: float = 0.05

    def __call__(self, clouds: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        noise = normal(clouds.shape[:2] + (3,), generator, clouds.device, clouds.dtype) * self.sigma
        noise = noise.clamp(-self.clip, self.clip)
        return _with_xyz(clouds, clouds[..., :3] + noise)


@dataclass
class PointDropout:
    """Drop a fraction uniform in [0, max_ratio] of each cloud's points, replacing them (all channels) with
    copies of the cloud's first point."""

    max_ratio: float = 0.875

    def __call__(self, clouds: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        b, n = clouds.shape[:2]
        ratio = uniform((b, 1), generator, clouds.device, clouds.dtype) * self.max_ratio
        drop = uniform((b, n), generator, clouds.device, clouds.dtype) < ratio
        return torch.where(drop[..., None], clouds[:, :1], clouds)


@dataclass
class Thin:
    """Keep a random share uniform in [1 − ``max_ratio``, 1] of each cloud's points and put copies of kept points,
    drawn at random, in the other slots: a sparser scan of the shape, fed to the model as a sparse cloud is after
    preprocessing (its points repeated up to N). Unlike :class:`PointDropout`, which stacks the dropped points on
    one point, the copies spread over the shape, so the sampler sees an evenly thinner cloud."""

    max_ratio: float = 0.75

    def __call__(self, clouds: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        b, n = clouds.shape[:2]
        keep = (n - (uniform((b, 1), generator, clouds.device) * self.max_ratio * n).floor()).clamp(min=1)  # [B, 1]
        order = uniform((b, n), generator, clouds.device).argsort(dim=1)          # [B, N] a random ranking
        positions = torch.arange(n, device=clouds.device).expand(b, n)
        rank = torch.empty_like(order).scatter_(1, order, positions)              # [B, N] each point's rank
        source = (uniform((b, n), generator, clouds.device) * keep).floor().long()  # [B, N] a kept rank
        kept = rank < keep
        index = torch.where(kept, positions, order.gather(1, source))
        return clouds.gather(1, index[..., None].expand_as(clouds))


@dataclass
class Compose:
    """Apply ``transforms`` in order, all drawing from the one generator."""

    transforms: list[PointTransform] = field(default_factory=list)

    def __call__(self, clouds: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        for transform in self.transforms:
            clouds = transform(clouds, generator)
        return clouds


def default_point_augment(normals: bool = False, up_axis: int = 1) -> Compose:
    """Rotation about the up axis, per-axis scale, jitter, then point dropout, each with its defaults."""
    return Compose([RotateUp(up_axis=up_axis, normals=normals), RandomScale(normals=normals), Jitter(),
                    PointDropout()])
