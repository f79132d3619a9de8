"""Point-cloud modality (ULIP / Point-BERT): a cloud or mesh → unit-sphere cloud of ``n_points`` → point-group
tokens → transformer → one vector.

**Loading** (:func:`read_point_cloud`). ``.ply`` / ``.pcd`` / ``.xyz`` / ``.pts`` clouds are read with
``open3d.io`` (colours and normals when the file has them); ``.npy`` / ``.npz`` hold an ``[N, 3]`` or ``[N, 6]``
array (an ``.npz`` under the key ``points`` or as its only array), whose last three columns are read as what
``extra`` names (colours or normals; ignored for ``extra="none"``). ``.obj`` / ``.off`` / ``.stl`` meshes, and
``.ply`` files whose header declares faces, are read as meshes and sampled uniformly on their surface
(``mesh_oversample · n_points`` points, area-weighted, seeded by ``mesh_seed`` so a file always gives the same
cloud; normals are the triangles' and colours are interpolated from vertex colours when the mesh has them).
In memory, open3d ``PointCloud`` / ``TriangleMesh`` objects are recognised on their own; a raw ``[N, 3 | 6]``
array or tensor needs ``modality="pointcloud"`` (an ``[N, 6]`` array could as well be an IMU series).

**Preprocessing** (:meth:`PointCloudModality.preprocess`) → float32 ``[n_points, 3 + E]``: centred on the
mean, scaled so the farthest point is at distance 1 (in float64), then resampled to ``n_points`` by
farthest-point sampling (open3d's, one cloud at a time), starting from the point farthest from the centroid.
A cloud with fewer points is sampled with replacement: every point ⌊n_points / N⌋ times, plus the
``n_points mod N`` points that farthest-point sampling picks first. Extra channels (``extra``): ``"rgb"``
(values above 1 are read as 0–255; a cloud without colours gets ULIP's grey ``missing_rgb`` = 0.4) or
``"normal"`` (a cloud without normals is an error). ``preprocessing="ulip"`` instead gives what ULIP's own
loader gives its encoder (:mod:`.ulip_sampling`: the file's point order kept, then ``pc_normalize``), for
converted ULIP weights (:func:`omniembed.convert.from_ulip` sets it, with ``fps_rule="pointnet2"`` and
``pos_every_block``).

**Order invariance.** Nothing depends on the order the points come in: the centroid and scale are
order-free, farthest-point sampling starts from the point farthest from the centroid (not from index 0) and
picks points by geometry, the repetition rule above is order-free, and the encoder's grouping, mini-PointNet
(max-pooled) and transformer (positions from group centres, no index positions) are permutation-invariant.
So a permuted cloud gets the same embedding, up to float rounding and exactly equal distances. (Not so
with ULIP's choices: its kernel starts at index 0, so its embeddings depend on which point comes first.)

**Encoder** (:mod:`.point_groups`): Point-BERT's stem — ``n_groups`` farthest-point centres, ``group_size``
nearest neighbours each, a mini-PointNet per centred group, a learned MLP of the centre as position, a CLS token
— then the shared transformer trunk and a ``cls_max`` head (CLS concatenated with the max over groups), as in
ULIP's Point-BERT.

**Bad input**, each an :class:`~omniembed.errors.InputError` naming the source: no points
(:class:`EmptyInputError`; also a mesh file open3d finds no faces in), NaN/Inf coordinates, all points
identical, an array that is not ``[N, 3]`` or ``[N, 6]``, an in-memory mesh without faces, ``extra="normal"``
without normals, an unreadable file (:class:`UnreadableInputError`). A cloud with fewer than ``n_points``
points is not an error: it is sampled with replacement as above.
"""

from __future__ import annotations

import sys
import threading
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from omniembed.config import HeadConfig, ModalityConfig, TransformerConfig
from omniembed.encoder import ModalityEncoder
from omniembed.errors import ConfigError, EmptyInputError, InputError, UnreadableInputError
from omniembed.extras import LazyModule
from omniembed.nn.heads import Postprocess, TokenHead
from omniembed.nn.tokens import PoolingHead, TransformerTrunk
from omniembed.nn.transformer import Transformer
from omniembed.registry import Modality, register_modality

from . import ply
from .off_mesh import read_joined_header_off
from .pcd import check_pcd
from .point_stem import PointGroupStem
from .point_trunk import PositionEveryBlockTrunk
from .ulip_sampling import ulip_sample_indices

CLOUD_SUFFIXES = (".ply", ".pcd", ".xyz", ".pts")
MESH_SUFFIXES = (".obj", ".off", ".stl")
ARRAY_SUFFIXES = (".npy", ".npz")
EXTRA_CHANNELS = {"none": 0, "rgb": 3, "normal": 3}
THUMBNAIL_VIEW = (np.radians(-35.0), np.radians(25.0))
"""Yaw about the up (y) axis, then pitch towards the viewer: a fixed oblique view for thumbnails."""
NEAR_RGB, FAR_RGB, BACKGROUND_RGB = (255, 196, 64), (36, 52, 140), 255

o3d = LazyModule("open3d", "point clouds (reading .ply/.pcd/.xyz/.pts and meshes, farthest-point sampling)")
_MESH_SAMPLING = threading.Lock()  # open3d's sampler draws from one global seeded generator


@dataclass
class PointCloudConfig(ModalityConfig):
    """Resampling (points), extra channels, mesh sampling and the Point-BERT encoder. Defaults: ULIP-2 sizes."""

    n_points: int = 8192
    extra: Literal["none", "rgb", "normal"] = "none"
    """Channels after xyz: "none", "rgb" (colours in [0, 1]) or "normal" (unit normals)."""
    missing_rgb: float = 0.4
    """The grey given to every point of a cloud without colours when ``extra="rgb"`` (ULIP's value)."""
    mesh_oversample: int = 2
    """A mesh is sampled at this many × ``n_points`` points, then reduced by farthest-point sampling, which
    spreads the points more evenly than uniform sampling alone."""
    mesh_seed: int = 0
    n_groups: int = 512
    group_size: int = 32
    encoder_dims: int = 256
    """Width of each group's mini-PointNet feature (before the Linear to the trunk width)."""
    stem_hidden: int = 128
    """Mini-PointNet widths are h, 2h, then 4h, 4h (Point-BERT: 128)."""
    pos_hidden: int = 128
    preprocessing: Literal["omniembed", "ulip", "ulip_as_stored"] = "omniembed"
    """How a cloud becomes ``n_points`` points (:data:`PREPROCESSING`): ``"omniembed"`` (normalise, then
    order-free farthest-point resampling), ``"ulip"`` (ULIP's loader: its point order kept, then
    ``pc_normalize``; see :mod:`.ulip_sampling`) or ``"ulip_as_stored"`` (the same order, xyz not normalised:
    ULIP-2's ModelNet40 evaluation)."""
    fps_rule: Literal["order_free", "pointnet2"] = "order_free"
    """The encoder's centre sampling (``point_groups.FPS_RULES``): ``"order_free"`` or ``"pointnet2"`` (ULIP /
    Point-BERT's CUDA kernel: starts at index 0, skips near-origin points, its tie order)."""
    pos_every_block: bool = False
    """Add the group positions before every trunk block, as Point-BERT does, instead of once at the input."""
    trunk: TransformerConfig = field(default_factory=lambda: TransformerConfig(
        width=384, depth=12, heads=6, drop_path=0.1, ln_eps=1e-6))
    head: HeadConfig = field(default_factory=lambda: HeadConfig(pool="cls_max", norm_eps=1e-6))


@dataclass
class PointCloud:
    """One raw cloud: ``xyz`` float64 [N, 3], optional ``colors`` [N, 3] and ``normals`` [N, 3]; ``source``
    names it in errors."""

    xyz: np.ndarray
    colors: np.ndarray | None
    normals: np.ndarray | None
    source: str


@register_modality
class PointCloudModality(Modality):
    """Point clouds and meshes: files, open3d geometries, or ``[N, 3 | 6]`` arrays with ``modality=``."""

    name = "pointcloud"
    config_cls = PointCloudConfig
    suffixes = CLOUD_SUFFIXES + MESH_SUFFIXES + ARRAY_SUFFIXES
    config: PointCloudConfig

    def __init__(self, config: PointCloudConfig):
        super().__init__(config)
        for key in ("n_points", "n_groups", "group_size", "mesh_oversample", "encoder_dims", "stem_hidden",
                    "pos_hidden"):
            if getattr(config, key) <= 0:
                raise ConfigError(f"pointcloud.{key} must be positive, got {getattr(config, key)}")
        if config.n_groups > config.n_points or config.group_size > config.n_points:
            raise ConfigError(f"pointcloud: {config.n_groups} groups of {config.group_size} points need "
                              f"n_points ≥ both, got {config.n_points}")
        if not 0.0 <= config.missing_rgb <= 1.0:
            raise ConfigError(f"pointcloud.missing_rgb must be in [0, 1], got {config.missing_rgb}")

    def load(self, path: Path) -> PointCloud:
        raw = read_point_cloud(path, self.config.extra)
        return self.sample(raw, str(path)) if _is_open3d(raw, "TriangleMesh") else raw

    def sample(self, mesh: o3d.geometry.TriangleMesh, source: str) -> PointCloud:
        """``mesh_oversample · n_points`` points on the mesh surface, the same ones every time."""
        cfg = self.config
        return sample_mesh(mesh, cfg.mesh_oversample * cfg.n_points, cfg.mesh_seed, source)

    def accepts(self, item: Any) -> bool:
        return isinstance(item, PointCloud) or _is_open3d(item, "PointCloud", "TriangleMesh")

    def preprocess(self, raw: Any) -> torch.Tensor:
        """A :class:`PointCloud`, open3d cloud or mesh, or ``[N, 3 | 6]`` array/tensor → float32
        ``[n_points, 3 + E]``: unit-sphere xyz, then the ``extra`` channels."""
        cfg = self.config
        cloud = self.as_cloud(raw)
        xyz, idx = PREPROCESSING[cfg.preprocessing](cloud.xyz, cfg.n_points, cloud.source)
        parts = [xyz]
        if cfg.extra == "rgb":
            if cloud.colors is None:
                parts.append(np.full((len(idx), 3), cfg.missing_rgb))
            else:
                colors = cloud.colors[idx]
                parts.append(colors / 255.0 if colors.max(initial=0.0) > 1.0 else colors)
        elif cfg.extra == "normal":
            if cloud.normals is None:
                raise InputError(cloud.source, "has no normals, but pointcloud.extra is 'normal'")
            parts.append(cloud.normals[idx])
        return torch.from_numpy(np.concatenate(parts, axis=1).astype(np.float32))

    def as_cloud(self, raw: Any) -> PointCloud:
        """Any accepted raw input → a checked :class:`PointCloud` (meshes sampled on their surface)."""
        cfg = self.config
        if _is_open3d(raw, "TriangleMesh"):
            raw = self.sample(raw, _describe(raw))
        elif _is_open3d(raw, "PointCloud"):
            raw = _from_open3d(raw, _describe(raw))
        elif not isinstance(raw, PointCloud):
            raw = cloud_from_array(raw, cfg.extra, _describe(raw))
        _check_finite(raw)
        return raw

    def thumbnail(self, path: Path, size: int = 96) -> np.ndarray:
        """The preprocessed cloud seen from a fixed oblique view, z-buffered and coloured by depth:
        uint8 [size, size, 3]."""
        return render_depth(self.preprocess(self.load(path))[:, :3].numpy(), size)

    def build_encoder(self, embed_dim: int) -> ModalityEncoder:
        cfg = self.config
        stem = PointGroupStem(3 + EXTRA_CHANNELS[cfg.extra], cfg.n_groups, cfg.group_size, cfg.trunk.width,
                              cfg.encoder_dims, cfg.stem_hidden, cfg.pos_hidden, cfg.fps_rule, cfg.pos_every_block)
        trunk = PositionEveryBlockTrunk if cfg.pos_every_block else TransformerTrunk
        return ModalityEncoder(stem, trunk(Transformer(cfg.trunk)),
                               PoolingHead(TokenHead(cfg.head, cfg.trunk.width, embed_dim)),
                               Postprocess(cfg.logit_scale))

    @classmethod
    def tiny_config(cls) -> PointCloudConfig:
        return PointCloudConfig(n_points=512, n_groups=32, group_size=16, encoder_dims=64, stem_hidden=32,
                                pos_hidden=32, trunk=TransformerConfig(width=64, depth=2, heads=4, ln_eps=1e-6))


# ---- reading ---------------------------------------------------------------------------------------------------


def read_point_cloud(path: Path, extra: str = "none") -> PointCloud | o3d.geometry.TriangleMesh:
    """One file → a :class:`PointCloud`, or an open3d ``TriangleMesh`` with faces for meshes. ``extra`` says
    what the last three columns of an ``[N, 6]`` array file are. A truncated PLY (fewer vertices than its
    header declares), a damaged PCD header and a file holding NaN or Inf values raise
    :class:`UnreadableInputError`."""
    suffix = path.suffix.lower()
    if suffix in ARRAY_SUFFIXES:
        return cloud_from_array(_read_array(path), extra, str(path))
    header = ply.read_header(path) if suffix == ".ply" else None
    if header is not None:
        ply.check_complete(path, header)
    if suffix == ".pcd":
        check_pcd(path)  # open3d's PCD reader trusts the header and can crash on a damaged one
    if suffix in MESH_SUFFIXES or (header is not None and header.count("face") > 0):
        with o3d.utility.VerbosityContextManager(o3d.utility.VerbosityLevel.Error):
            mesh = o3d.io.read_triangle_mesh(str(path))
        if suffix == ".off" and len(mesh.vertices) == 0 and _off_header_joined(path):
            mesh = read_joined_header_off(path)  # ModelNet40's "OFF<V> <F> <E>" first lines, refused by open3d
        if len(mesh.vertices) == 0 or len(mesh.triangles) == 0:
            raise EmptyInputError(str(path), "no mesh could be read: open3d found no vertices or no faces (an "
                                             "empty, unreadable or face-less mesh, which has no surface to sample)")
        _check_read(path, header, mesh.vertices, mesh.vertex_colors, mesh.vertex_normals)
        return mesh
    with o3d.utility.VerbosityContextManager(o3d.utility.VerbosityLevel.Error):
        cloud = o3d.io.read_point_cloud(str(path))
    if len(cloud.points) == 0:
        raise EmptyInputError(str(path), f"no points could be read (an empty cloud, or not a valid {suffix} file)")
    _check_read(path, header, cloud.points, cloud.colors, cloud.normals)
    return _from_open3d(cloud, str(path))


def _off_header_joined(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(16)
    return head.startswith(b"OFF") and head[3:4].isdigit()


def _check_read(path: Path, header: ply.PlyHeader | None, xyz: Any, colors: Any, normals: Any) -> None:
    """What open3d read (``Vector3dVector`` s, [N, 3]) must be every vertex the PLY header declares, and finite."""
    if header is not None and len(xyz) != header.count("vertex"):
        raise UnreadableInputError(str(path), f"the PLY header declares {header.count('vertex')} vertices, "
                                              f"{len(xyz)} could be read")
    for name, vectors in (("coordinates", xyz), ("colours", colors), ("normals", normals)):
        values = np.asarray(vectors)
        if values.size and not np.isfinite(values).all():
            bad = int((~np.isfinite(values)).any(axis=1).sum())
            raise UnreadableInputError(str(path), f"{bad} points of the file have NaN or Inf {name}")


def _read_array(path: Path) -> np.ndarray:
    try:
        data = np.load(path, allow_pickle=False)
        if isinstance(data, np.ndarray):
            return data
        with data:
            keys = list(data.keys())
            if "points" in keys or len(keys) == 1:
                return data["points" if "points" in keys else keys[0]]
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise UnreadableInputError(str(path), f"cannot read array ({exc})") from exc
    raise InputError(str(path), f".npz needs a 'points' array (or exactly one array), has {keys}")


def _from_open3d(cloud: o3d.geometry.PointCloud, source: str) -> PointCloud:
    return PointCloud(np.asarray(cloud.points, dtype=np.float64),
                      np.asarray(cloud.colors, dtype=np.float64) if cloud.has_colors() else None,
                      np.asarray(cloud.normals, dtype=np.float64) if cloud.has_normals() else None, source)


def cloud_from_array(array: Any, extra: str, source: str) -> PointCloud:
    """An ``[N, 3]`` or ``[N, 6]`` array or tensor → :class:`PointCloud`; columns 3–5 are what ``extra`` names."""
    if isinstance(array, torch.Tensor):
        array = array.detach().cpu().numpy()
    if not isinstance(array, np.ndarray):
        raise InputError(source, "not a point cloud (expected a path, an open3d geometry, or an [N, 3] / "
                                 "[N, 6] array or tensor)")
    if array.ndim != 2 or array.shape[1] not in (3, 6):
        raise InputError(source, f"point array must be [N, 3] (xyz) or [N, 6] (xyz + rgb or normal), "
                                 f"got shape {tuple(array.shape)}")
    if array.dtype.kind not in "fiu":
        raise InputError(source, f"point array must be numeric, got dtype {array.dtype}")
    array = array.astype(np.float64)
    rest = array[:, 3:] if array.shape[1] == 6 else None
    return PointCloud(array[:, :3], rest if extra == "rgb" else None, rest if extra == "normal" else None, source)


def sample_mesh(mesh: o3d.geometry.TriangleMesh, n: int, seed: int, source: str) -> PointCloud:
    """``n`` points uniformly (area-weighted) on the surface of ``mesh``, the same ones for the same seed."""
    if len(mesh.vertices) == 0:
        raise EmptyInputError(source, "mesh has no vertices")
    if len(mesh.triangles) == 0:
        raise InputError(source, f"mesh has {len(mesh.vertices)} vertices but no faces: there is no surface to "
                                 f"sample (store a point cloud as .ply, .pcd, .xyz, .pts or .npy instead)")
    if not np.isfinite(np.asarray(mesh.vertices)).all():
        raise InputError(source, "mesh has NaN or Inf vertex coordinates")
    with _MESH_SAMPLING:
        o3d.utility.random.seed(seed)
        cloud = mesh.sample_points_uniformly(number_of_points=n, use_triangle_normal=True)
    return _from_open3d(cloud, source)


# ---- preprocessing ---------------------------------------------------------------------------------------------


def _check_finite(cloud: PointCloud) -> None:
    if len(cloud.xyz) == 0:
        raise EmptyInputError(cloud.source, "point cloud has no points")
    for name, values in (("coordinates", cloud.xyz), ("colours", cloud.colors), ("normals", cloud.normals)):
        if values is not None and not np.isfinite(values).all():
            bad = int((~np.isfinite(values)).any(axis=1).sum())
            raise InputError(cloud.source, f"{bad} of {len(values)} points have NaN or Inf {name}")


def normalise(xyz: np.ndarray, source: str) -> np.ndarray:
    """Centre on the mean and scale the farthest point to distance 1: float64 [N, 3] → [N, 3]."""
    centred = xyz - xyz.mean(axis=0)
    scale = np.sqrt((centred ** 2).sum(axis=1).max())
    if not scale > 1e-12 * max(1.0, np.abs(xyz).max()):
        raise InputError(source, f"all {len(xyz)} points are identical: the cloud has no extent to normalise")
    return centred / scale


def resample_indices(xyz: np.ndarray, n: int) -> np.ndarray:
    """Indices [n] that resample a normalised cloud [N, 3] to ``n`` points without depending on point order:
    farthest-point sampling from the point farthest from the centroid when N ≥ n; otherwise every point
    ⌊n / N⌋ times plus the first ``n mod N`` farthest-point samples."""
    repeats, rest = divmod(n, len(xyz))
    whole = np.tile(np.arange(len(xyz)), repeats) if repeats else np.empty(0, dtype=np.int64)
    if rest == 0:
        return whole
    return np.concatenate([whole, farthest_point_indices(xyz, rest)])


def order_free_points(xyz: np.ndarray, n: int, source: str) -> tuple[np.ndarray, np.ndarray]:
    """OmniEmbed's preprocessing: normalise, then :func:`resample_indices`. float64 [N, 3] → ([n, 3], indices [n])."""
    xyz = normalise(xyz, source)
    idx = resample_indices(xyz, n)
    return xyz[idx], idx


def ulip_points(xyz: np.ndarray, n: int, source: str) -> tuple[np.ndarray, np.ndarray]:
    """ULIP's loader: its sampling (:func:`~.ulip_sampling.ulip_sample_indices`), then ``pc_normalize`` of the
    sampled xyz. float64 [N, 3] → ([n, 3], indices [n])."""
    idx = ulip_sample_indices(xyz, n)
    return normalise(xyz[idx], source), idx


def ulip_points_as_stored(xyz: np.ndarray, n: int, source: str) -> tuple[np.ndarray, np.ndarray]:
    """ULIP-2's ModelNet40 test: its sampling, xyz as stored (it normalises a copy it then throws away)."""
    idx = ulip_sample_indices(xyz, n)
    return xyz[idx], idx


PREPROCESSING = {"omniembed": order_free_points, "ulip": ulip_points, "ulip_as_stored": ulip_points_as_stored}
"""``PointCloudConfig.preprocessing`` → (xyz [N, 3], n_points, source) → (model xyz [n, 3], indices [n])."""


def farthest_point_indices(xyz: np.ndarray, n: int) -> np.ndarray:
    """open3d's farthest-point sampling of one cloud [N, 3], started at the point farthest from the centroid
    (an order-free choice) → indices [n] (in index order, as open3d returns them)."""
    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(xyz))
    # carry each point's index through the sampling in its colour (doubles hold integers exactly)
    cloud.colors = o3d.utility.Vector3dVector(np.repeat(np.arange(len(xyz), dtype=np.float64)[:, None], 3, axis=1))
    start = int(((xyz - xyz.mean(axis=0)) ** 2).sum(axis=1).argmax())
    picked = cloud.farthest_point_down_sample(n, start_index=start)
    return np.asarray(picked.colors)[:, 0].astype(np.int64)


# ---- thumbnails ------------------------------------------------------------------------------------------------


def view_rotation() -> np.ndarray:
    """The thumbnails' camera: [3, 3] rotation taking cloud coordinates (y up) to view coordinates (x right,
    y up, z towards the viewer), yaw about y then pitch about x."""
    yaw, pitch = THUMBNAIL_VIEW
    turn = np.array([[np.cos(yaw), 0, np.sin(yaw)], [0, 1, 0], [-np.sin(yaw), 0, np.cos(yaw)]])
    tilt = np.array([[1, 0, 0], [0, np.cos(pitch), -np.sin(pitch)], [0, np.sin(pitch), np.cos(pitch)]])
    return tilt @ turn


def render_depth(xyz: np.ndarray, size: int) -> np.ndarray:
    """Splat a unit-sphere cloud [N, 3] (y up) into a uint8 [size, size, 3] picture: orthographic, from the
    fixed oblique ``THUMBNAIL_VIEW``, nearest point per pixel (z-buffer), near points warm and far points dark
    blue, on white."""
    view = xyz @ view_rotation().T  # x right, y up, z towards the viewer
    radius = max(1, size // 48)  # each point is a square of 2r + 1 pixels
    dy, dx = np.mgrid[-radius: radius + 1, -radius: radius + 1]
    col = np.rint((view[:, 0] + 1) / 2 * (size - 1)).astype(np.int64)[:, None] + dx.ravel()
    row = np.rint((1 - view[:, 1]) / 2 * (size - 1)).astype(np.int64)[:, None] + dy.ravel()
    depth = np.broadcast_to(view[:, 2:3], col.shape)
    inside = (col >= 0) & (col < size) & (row >= 0) & (row < size)
    zbuffer = np.full(size * size, -np.inf)
    np.maximum.at(zbuffer, (row * size + col)[inside], depth[inside])
    seen = np.isfinite(zbuffer)
    near = np.clip((zbuffer[seen] + 1) / 2, 0, 1)[:, None]
    image = np.full((size * size, 3), BACKGROUND_RGB, dtype=np.float64)
    image[seen] = near * np.array(NEAR_RGB) + (1 - near) * np.array(FAR_RGB)
    return np.rint(image).astype(np.uint8).reshape(size, size, 3)


def _describe(raw: Any) -> str:
    if _is_open3d(raw, "TriangleMesh"):
        return f"<TriangleMesh of {len(raw.vertices)} vertices, {len(raw.triangles)} triangles>"
    if _is_open3d(raw, "PointCloud"):
        return f"<PointCloud of {len(raw.points)} points>"
    shape = getattr(raw, "shape", None)
    return f"<{type(raw).__name__}{' ' + str(tuple(shape)) if shape is not None else ''}>"


def _is_open3d(item: Any, *kinds: str) -> bool:
    """Whether ``item`` is one of open3d's geometries ``kinds``; without importing open3d, which a user who holds
    an open3d object has imported already."""
    module = sys.modules.get("open3d")
    return module is not None and isinstance(item, tuple(getattr(module.geometry, kind) for kind in kinds))
