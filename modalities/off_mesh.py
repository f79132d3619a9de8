"""OFF meshes whose first line joins the keyword and the counts (``OFF490 518 0``), as a quarter of
ModelNet40's files are written. open3d's reader refuses that header; the rest of such a file is plain OFF.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from omniembed.errors import UnreadableInputError
from omniembed.extras import LazyModule

o3d = LazyModule("open3d", "reading OFF meshes")


def read_joined_header_off(path: Path) -> "o3d.geometry.TriangleMesh":
    """An ``OFF<V> <F> <E>`` file → TriangleMesh (polygons fanned into triangles). The vertices [V, 3] follow
    the header, then F faces ``k i1 … ik``; ``#`` comments are ignored."""
    source = str(path)
    try:
        lines = [line.split("#", 1)[0] for line in path.read_text(encoding="ascii", errors="strict").splitlines()]
    except (OSError, UnicodeDecodeError) as exc:
        raise UnreadableInputError(source, f"cannot read as an OFF text file ({exc})") from exc
    tokens = " ".join(lines).split()
    if not tokens or not tokens[0].startswith("OFF") or tokens[0] == "OFF":
        raise UnreadableInputError(source, "not an OFF file with the counts joined to its 'OFF' keyword")
    try:
        n_vertices, n_faces = int(tokens[0][3:]), int(tokens[1])
        values = tokens[3:]
        vertices = np.asarray(values[: 3 * n_vertices], dtype=np.float64).reshape(n_vertices, 3)
        triangles = _fan(values[3 * n_vertices:], n_faces)
    except (ValueError, IndexError) as exc:
        raise UnreadableInputError(source, f"malformed or truncated OFF data ({exc})") from exc
    if len(triangles) and (triangles.min() < 0 or triangles.max() >= n_vertices):
        raise UnreadableInputError(source, f"a face refers to a vertex outside 0…{n_vertices - 1}")
    return o3d.geometry.TriangleMesh(o3d.utility.Vector3dVector(vertices), o3d.utility.Vector3iVector(triangles))


def _fan(values: list[str], n_faces: int) -> np.ndarray:
    """Faces ``k i1 … ik`` → triangles [T, 3] (i1, ij, ij+1); an all-triangle list is read in one reshape."""
    if len(values) >= 4 * n_faces and all(v == "3" for v in values[: 4 * n_faces: 4]):
        return np.asarray(values[: 4 * n_faces], dtype=np.int64).reshape(n_faces, 4)[:, 1:]
    triangles, at = [], 0
    for _ in range(n_faces):
        k = int(values[at])
        face = [int(v) for v in values[at + 1: at + 1 + k]]
        if len(face) != k or k < 3:
            raise ValueError(f"face {len(triangles)} lists {len(face)} of {k} vertices")
        triangles += [(face[0], face[j], face[j + 1]) for j in range(1, k - 1)]
        at += 1 + k
    return np.asarray(triangles, dtype=np.int64).reshape(-1, 3)
