"""ULIP's loader, as far as the encoder can tell: which points reach it, in which order, normalised how.

ULIP's Point-BERT starts its farthest-point sampling at **index 0**, so what its loader puts first matters. Its
ModelNet40 loader reads clouds pre-sampled to ``npoints`` by farthest-point sampling (stored in pick order),
takes them as they are, then applies ``pc_normalize`` (centre on the mean, divide by the largest norm) to xyz;
colours, when used, are appended as stored. :func:`ulip_sample_indices` keeps that order:

- ``N == n``: every point, in the file's order;
- ``N > n``: farthest-point sampling in pick order, like ULIP's loader, but started at index 0 rather than at
  ULIP's ``np.random.randint`` so that a file always gives the same cloud (ties between equally far points go
  to the first in Morton order, not the lowest index — only exact ties differ);
- ``N < n``: ULIP never meets it (its data always hold enough points); the points are cycled in order
  (0, 1, …, N − 1, 0, 1, …), which keeps index 0 first and repeats every point about equally.
"""

from __future__ import annotations

import numpy as np
import torch

from .point_groups import farthest_point_sample


def ulip_sample_indices(xyz: np.ndarray, n: int) -> np.ndarray:
    """Indices [n] into a cloud ``xyz`` [N, 3] that ULIP's loader would hand on, in its order (see above)."""
    count = len(xyz)
    if count <= n:
        return np.arange(n) % count
    points = torch.from_numpy(np.ascontiguousarray(xyz, dtype=np.float32))[None]
    return farthest_point_sample(points, n, start=torch.zeros(1, dtype=torch.long))[0].numpy()
