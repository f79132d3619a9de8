"""Farthest-point sampling and k nearest neighbours on CPU with libraries made for them, a cloud per thread.

**Sampling** is fpsample's QuickFPS (``bucket_fps_kdline_sampling``): an exact farthest-point sampling that
keeps the points in the buckets of a KD-tree and skips every bucket the new centre cannot change. It picks the
same points as the torch sampler of :mod:`.point_groups` (rule ``order_free``) — up to float rounding of
nearly equal distances, because it measures them in a reflected copy of the cloud (below), in float32.

**The first centre.** ``order_free`` starts at the point ``s`` farthest from the centroid, but fpsample's
``start_idx`` names a position in its KD-tree after the tree has reordered the points (fpsample 0.3 and 1.0),
not an input index. So the cloud is given a phantom first point ``q`` that the tree keeps at position 0 and
that leads straight to ``s``:

- the centred cloud is reflected (a Householder reflection, distances unchanged) so that ``s`` lies on the
  diagonal ``w = (1, 1, 1) / √3``, at radius ``r``;
- ``q = −4 r w`` is below every point in every coordinate, so each of the tree's splits (at the mean of a
  coordinate) leaves it first, and ``start_idx=0`` is ``q`` whether or not fpsample maps positions back;
- ``|x − q|² = |x|² + 8 r w·x + 16 r²`` is largest at ``s``, which maximises both ``|x|`` and ``w·x``, so the
  second pick is ``s``;
- every point is within ``2 r`` of ``s`` and at least ``3 r`` from ``q``, so after ``s`` the distance to ``q``
  never is the nearest one: the picks after ``q`` are exactly farthest-point sampling from ``s``.

``q`` is dropped from the result. A cloud where this does not hold — all points equal, more centres asked for
than distinct points (QuickFPS may then pick ``q`` again), or an fpsample that starts elsewhere — is reported
back (``ok`` False) for the torch sampler to do.

**Neighbours** are scipy's ``cKDTree`` queries: exact, nearest first (ties in any order).

Both libraries release the GIL, so a thread pool of ``torch.get_num_threads()`` threads, one cloud per task,
runs on as many cores as torch's own kernels would.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from omniembed.errors import MissingExtraError
from omniembed.extras import optional

BUCKET_POINTS = 512
"""About how many points each KD-tree bucket holds: the tree height is log2(N / BUCKET_POINTS) (fastest at
8,192 points, between heights 3 and 6)."""
PHANTOM_RADII = 4.0
"""The phantom first point's distance from the centroid, in cloud radii (any value above 3 keeps it out of
every later distance, see the module docstring)."""
_DIAGONAL = np.full(3, 1 / math.sqrt(3))


def quick_fps_available() -> bool:
    """Whether fpsample and scipy import (``pip install 'omniembed[pointcloud]'``)."""
    return optional("fpsample") is not None and optional("scipy.spatial") is not None


def require_quick_fps() -> None:
    """:class:`~omniembed.errors.MissingExtraError` naming the ``pointcloud`` extra when fpsample or scipy does not
    import (both ship in it, whatever extra another feature lists scipy under)."""
    for module in ("fpsample", "scipy.spatial"):
        if optional(module) is None:
            raise MissingExtraError("the quick farthest-point sampling backend", module.partition(".")[0],
                                    "pointcloud")


def tree_height(n_points: int) -> int:
    """QuickFPS's KD-tree height for ``n_points`` ≥ 2 (the phantom included): at least 1, and 2^height ≤ N."""
    return max(1, round(math.log2(max(n_points / BUCKET_POINTS, 1))))


def phantom_cloud(xyz: np.ndarray) -> tuple[np.ndarray, int] | None:
    """The cloud QuickFPS samples: ``xyz`` float32 [N, 3] → (float32 [N + 1, 3]: the phantom first point, then
    the cloud centred and reflected; the first centre ``s``, an index into N), or None where all points are
    equal. ``s`` is chosen in float32, as the torch sampler chooses it; the reflection is in float64.
    """
    # means and row sums as products with ones: numpy's reductions over a [N, 3] array's short rows and long
    # columns run several times slower than BLAS does them
    n = len(xyz)
    offset = xyz - np.ones(n, dtype=np.float32) @ xyz / np.float32(n)
    first = int(((offset * offset) @ np.ones(3, dtype=np.float32)).argmax())
    centred = xyz.astype(np.float64)
    centred -= np.ones(n) @ centred / n
    s = centred[first]
    radius = float(np.sqrt(s @ s))
    if not radius > 0:
        return None
    # Householder reflection x ↦ x − 2 (x·v) v / |v|² with v = s/r − w, which takes s/r to w
    v = s / radius - _DIAGONAL
    vv = float(v @ v)
    reflection = np.eye(3) - np.outer(v, v) * (2 / vv) if vv > 0 else np.eye(3)  # vv = 0: s already on w
    out = np.empty((n + 1, 3), dtype=np.float32)
    out[0] = -PHANTOM_RADII * radius * _DIAGONAL
    out[1:] = centred @ reflection
    return out, first


def _sample_one(xyz: np.ndarray, n_samples: int, k: int) -> tuple[np.ndarray, np.ndarray] | None:
    """One cloud float32 [N, 3] → (centres [S], neighbours [S, k]), or None where the phantom cannot lead the
    sampling to the first centre (see the module docstring)."""
    import fpsample
    from scipy.spatial import cKDTree

    start = phantom_cloud(xyz)
    if start is None:
        return None
    cloud, first = start
    picks = fpsample.bucket_fps_kdline_sampling(cloud, n_samples + 1, h=tree_height(len(cloud)), start_idx=0)
    picks = np.asarray(picks, dtype=np.int64)
    if picks[0] != 0 or picks[1] != first + 1 or (picks[1:] == 0).any():
        return None
    centres = picks[1:] - 1
    if not k:
        return centres, np.empty((n_samples, 0), dtype=np.int64)
    # an unbalanced tree of 32-point leaves builds in about half the time and answers as fast here
    tree = cKDTree(xyz, leafsize=32, balanced_tree=False, compact_nodes=False)
    _, neighbours = tree.query(xyz[centres], k=k)
    return centres, np.asarray(neighbours, dtype=np.int64).reshape(n_samples, k)


def quick_fps_knn(points: torch.Tensor, n_samples: int, k: int
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Farthest-point sampling from the point farthest from the centroid and each centre's ``k`` nearest
    points, for CPU clouds ``points`` [B, N, 3] (float32) → (centres [B, S], neighbours [B, S, k], nearest
    first, ``ok`` bool [B]). Rows where ``ok`` is False hold zeros: those clouds are left to the caller."""
    b = points.shape[0]
    clouds = points.numpy()
    centres = np.zeros((b, n_samples), dtype=np.int64)
    neighbours = np.zeros((b, n_samples, k), dtype=np.int64)
    ok = np.zeros(b, dtype=bool)
    with ThreadPoolExecutor(max_workers=max(1, min(torch.get_num_threads(), b))) as pool:
        for i, result in enumerate(pool.map(lambda xyz: _sample_one(xyz, n_samples, k), clouds)):
            if result is not None:
                centres[i], neighbours[i] = result
                ok[i] = True
    return torch.from_numpy(centres), torch.from_numpy(neighbours), torch.from_numpy(ok)
