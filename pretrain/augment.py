"""Training-time augmentation per modality (``data.augment``): a typed config per kind, applied to each step's batch.

::

    data:
      augment:
        image: {kind: affine, min_scale: 0.4}     # modalities/image_augment.py; {kind: scan}: modalities/
                                                  # scan_augment.py (scanned digits across sources)
        pointcloud: {kind: points}                # modalities/point_augment.py (PointNet++ / Point-BERT defaults)
        audio: {kind: spec}                       # modalities/audio_augment.py (speed, vocal tract, SpecAugment)

A modality's collated batch (a tensor: images ``[B, C, H, W]``, clouds ``[B, N, 3 + E]``, filterbanks
``[B, n_clips, 1, M, T]``) is transformed in the training step, on the device, before the towers see it. The draws
come from a generator seeded by (``train.seed``, step, rank), so a resumed run augments exactly as an uninterrupted
one and ranks draw apart.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from omniembed.config import from_dict
from omniembed.errors import ConfigError
from omniembed.modalities.audio_augment import SpecAugment
from omniembed.modalities.image_augment import RandomAffine
from omniembed.modalities.point_augment import (Compose, Jitter, Outline, PointDropout, RandomScale, RotateUp,
                                                SlabDepth, SlabFaces, Thin)
from omniembed.modalities.random_draws import check_range
from omniembed.modalities.scan_augment import ScanAugment

BatchTransform = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


@dataclass
class PointAugment:
    """The cloud's thinnest axis scaled by a factor in ``depth`` (``[1, 1]``: off), its points moved onto the slab's
    two faces for a ``faces`` share of clouds (0: off), only their outline's ``outline_keep`` share of points kept
    for an ``outline`` share of clouds (0: off), a tilt of up to ``tilt`` radians
    about each of the two other axes (0: none), rotation about ``up_axis`` (up to ``max_angle`` radians; 0 for
    none), per-axis scale in ``scale``, jitter of std ``jitter`` clipped to ±``jitter_clip``, thinning by up to
    ``thin`` of the points (0: off) and dropout of up to ``dropout`` of the points, in that order."""

    up_axis: int = 1
    max_angle: float = math.pi
    scale: list[float] = field(default_factory=lambda: [2 / 3, 3 / 2])
    jitter: float = 0.01
    jitter_clip: float = 0.05
    dropout: float = 0.875
    depth: list[float] = field(default_factory=lambda: [1.0, 1.0])
    tilt: float = 0.0
    faces: float = 0.0
    thin: float = 0.0
    outline: float = 0.0
    outline_keep: float = 0.6
    normals: bool = False

    def __post_init__(self) -> None:
        check_range("PointAugment", "scale", self.scale)
        check_range("PointAugment", "depth", self.depth)
        for name in ("faces", "thin", "outline"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"PointAugment: {name} is a share in [0, 1], got {getattr(self, name)}")
        if not 0 < self.outline_keep <= 1:
            raise ValueError(f"PointAugment: outline_keep is a share in (0, 1], got {self.outline_keep}")
        first = [SlabDepth(self.depth[0], self.depth[1], self.normals)] if self.depth != [1, 1] else []
        first += [SlabFaces(self.faces, self.normals)] if self.faces else []
        first += [Outline(self.outline, self.outline_keep)] if self.outline else []
        first += [RotateUp(axis, self.tilt, self.normals) for axis in range(3) if axis != self.up_axis and self.tilt]
        self.chain = Compose([*first, RotateUp(self.up_axis, self.max_angle, self.normals),
                              RandomScale(self.scale[0], self.scale[1], normals=self.normals),
                              Jitter(self.jitter, self.jitter_clip),
                              *([Thin(self.thin)] if self.thin else []), PointDropout(self.dropout)])

    def __call__(self, clouds: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """[B, N, 3 + E] → [B, N, 3 + E]."""
        return self.chain(clouds, generator)


AUGMENTATIONS: dict[str, type] = {"affine": RandomAffine, "scan": ScanAugment, "points": PointAugment,
                                  "spec": SpecAugment}
"""Kind → a dataclass whose fields are the config and whose instances are the batch transforms."""


def build_transform(modality: str, spec: dict[str, Any]) -> BatchTransform:
    """``{"kind": name, **its fields}`` → the transform; a ConfigError naming ``data.augment.<modality>`` if bad."""
    where = f"data.augment.{modality}"
    if not isinstance(spec, dict) or "kind" not in spec:
        raise ConfigError(f"{where}: expected {{kind: {' | '.join(AUGMENTATIONS)}, ...}}, got {spec!r}")
    fields = dict(spec)
    kind = fields.pop("kind")
    if kind not in AUGMENTATIONS:
        raise ConfigError(f"{where}.kind: unknown augmentation '{kind}' (known: {', '.join(AUGMENTATIONS)})")
    try:
        return from_dict(AUGMENTATIONS[kind], fields, where)
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from exc


class Augmenter:
    """Applies each configured modality's transform to a step's inputs ``{modality: batch}``; others pass as is."""

    def __init__(self, specs: dict[str, dict[str, Any]], modalities: list[str], seed: int, rank: int = 0):
        unknown = sorted(set(specs) - set(modalities))
        if unknown:
            raise ConfigError(f"data.augment names {', '.join(unknown)}, which the model lacks (it has "
                              f"{', '.join(modalities)})")
        self.transforms = {m: build_transform(m, spec) for m, spec in specs.items()}
        self.seed, self.rank = seed, rank

    def __call__(self, inputs: dict[str, Any], step: int, part: int = 0) -> dict[str, Any]:
        """``step``: the step about to run (0-based); the same step always draws the same augmentations.
        ``part``: the micro-batch of the step (``train.accum_steps``), so that each draws its own."""
        key = ((self.seed * 1_000_003 + step) * 1_009 + self.rank) % 2 ** 63
        generator = torch.Generator().manual_seed((key * 1_013 + part) % 2 ** 63 if part else key)
        out = dict(inputs)
        for modality, transform in self.transforms.items():
            if modality not in inputs:
                continue
            batch = inputs[modality]
            if not isinstance(batch, torch.Tensor):
                raise ConfigError(f"data.augment.{modality}: its batches are {type(batch).__name__}, not tensors; "
                                  f"these augmentations take image, point-cloud or filterbank tensors")
            out[modality] = transform(batch, generator)
        return out

