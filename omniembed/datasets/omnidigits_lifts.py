"""Point-cloud lifting recipes: the ways OmniDigits turns a digit's ink into a 3-D cloud, each a source of its own.

A recipe fixes what changes between point-cloud generators (slab depth, aspect, density, where points are
sampled), so a model can be trained on some recipes and scored on one it never saw (leave-one-source-out).
Every recipe then centres the cloud, rotates it by a random rotation of at most :data:`MAX_ROTATION_DEGREES`
about each axis (limited, so a 6 never becomes a 9) and jitters it by Gaussian noise.

* ``lift-slab`` — today's OmniDigits clouds: 1,536 points drawn from ink pixels (weighted by ink, uniform within
  the pixel), z uniform over a slab 0.15 thick;
* ``lift-deep`` — the same ink extruded 0.6 deep: a digit seen as a thick block;
* ``lift-sparse`` — 384 points, more jitter: a low-density scan;
* ``lift-stretched`` — x scaled by 0.6–1.5 against y (narrow to wide glyphs), slab 0.3 thick;
* ``lift-outline`` — points on the ink's outline only (ink pixels with a background neighbour), on the slab's two
  faces (z = ±depth/2), as a surface sampler of a mesh would give.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from ..errors import ConfigError
from ..extras import require

MAX_ROTATION_DEGREES = (30.0, 45.0, 20.0)
"""Largest rotation about x, y and z."""
INK_THRESHOLD = 0.3
"""Fraction of the image's peak above which a pixel is ink."""


@dataclass(frozen=True)
class LiftRecipe:
    """How a uint8 ``[h, w]`` digit becomes float32 ``[points, 3]``; lengths are in the units of the digit's
    [-1, 1] x/y extent."""

    name: str
    points: int = 1536
    depth: float = 0.15
    """Slab thickness along z."""
    aspect: tuple[float, float] = (1.0, 1.0)
    """Range of the random x scale (y keeps its size)."""
    sampling: Literal["ink", "outline"] = "ink"
    """``ink``: every ink pixel, weighted by its ink; ``outline``: only ink pixels with a background 4-neighbour."""
    z: Literal["volume", "faces"] = "volume"
    """``volume``: z uniform through the slab; ``faces``: z on the slab's front or back face."""
    jitter: float = 0.01
    """Standard deviation of the Gaussian noise added to every coordinate."""


LIFT_RECIPES: dict[str, LiftRecipe] = {r.name: r for r in (
    LiftRecipe("lift-slab"),
    LiftRecipe("lift-deep", depth=0.6),
    LiftRecipe("lift-sparse", points=384, jitter=0.02),
    LiftRecipe("lift-stretched", depth=0.3, aspect=(0.6, 1.5)),
    LiftRecipe("lift-outline", sampling="outline", z="faces"),
)}
"""Every recipe by name; ``lift-slab`` is the one single-source builds use."""
DEFAULT_LIFT = "lift-slab"


def lift_recipe(name: str) -> LiftRecipe:
    """The recipe called ``name``; :class:`ConfigError` naming the known ones otherwise."""
    if name not in LIFT_RECIPES:
        raise ConfigError(f"omnidigits: point-cloud recipe '{name}' is not one of {list(LIFT_RECIPES)}")
    return LIFT_RECIPES[name]


def lift_digit(digit: np.ndarray, rng: np.random.Generator, recipe: LiftRecipe) -> np.ndarray:
    """uint8 ``[h, w]`` digit → float32 ``[recipe.points, 3]``: its ink lifted by ``recipe``, rotated, jittered."""
    Rotation = require("scipy.spatial.transform", "OmniDigits point clouds (random rotations)").Rotation

    ink = digit.astype(np.float64) / max(1, int(digit.max()))
    mask = ink > INK_THRESHOLD
    if recipe.sampling == "outline":
        mask = mask & ~_interior(mask)
    ys, xs = np.nonzero(mask)
    weights = ink[ys, xs] / ink[ys, xs].sum()
    n = recipe.points
    pick = rng.choice(len(xs), size=n, p=weights)
    half = (max(digit.shape) - 1) / 2
    x = (xs[pick] + rng.uniform(-0.5, 0.5, n) - half) / half
    y = -(ys[pick] + rng.uniform(-0.5, 0.5, n) - half) / half  # image rows grow downwards, y upwards
    if recipe.aspect != (1.0, 1.0):
        x = x * rng.uniform(*recipe.aspect)
    if recipe.z == "faces":
        z = rng.choice([-recipe.depth / 2, recipe.depth / 2], size=n)
    else:
        z = rng.uniform(-recipe.depth / 2, recipe.depth / 2, n)
    points = np.stack([x, y, z], axis=1)
    points -= points.mean(axis=0)
    angles = rng.uniform(-1, 1, 3) * np.asarray(MAX_ROTATION_DEGREES)
    points = points @ Rotation.from_euler("xyz", angles, degrees=True).as_matrix().T
    return (points + rng.normal(0, recipe.jitter, points.shape)).astype(np.float32)


def _interior(mask: np.ndarray) -> np.ndarray:
    """bool ``[h, w]``: pixels whose four neighbours are all ink (outside the image counts as background)."""
    padded = np.pad(mask, 1)
    return padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
