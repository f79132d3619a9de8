"""Point-cloud modality: reading files and meshes, normalisation, resampling, bad input, embeddings, thumbnails."""

from pathlib import Path

import numpy as np
import open3d as o3d
import pytest
import torch

from omniembed.errors import ConfigError, EmptyInputError, InputError, MissingInputError, UnreadableInputError
from omniembed.modalities.pointcloud import (PointCloud, PointCloudConfig, PointCloudModality, read_point_cloud,
                                             render_depth, view_rotation)


def modality(**overrides) -> PointCloudModality:
    return PointCloudModality(PointCloudConfig(**{"n_points": 256, "n_groups": 16, "group_size": 8, **overrides}))


def torus_points(n: int, seed: int = 0) -> np.ndarray:
    mesh = o3d.geometry.TriangleMesh.create_torus(torus_radius=1.0, tube_radius=0.35)
    o3d.utility.random.seed(seed)
    return np.asarray(mesh.sample_points_uniformly(n).points) * 3.0 + [5.0, -2.0, 1.0]  # off-centre, not unit


def write_ply_cloud(path: Path, xyz: np.ndarray, colors: np.ndarray | None = None) -> Path:
    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(xyz))
    if colors is not None:
        cloud.colors = o3d.utility.Vector3dVector(colors)
    assert o3d.io.write_point_cloud(str(path), cloud)
    return path


@pytest.fixture
def cloud_files(tmp_path: Path) -> dict[str, Path]:
    """The same 256 points as .ply, .pcd, .xyz, .pts, .npy and .npz."""
    xyz = torus_points(256)
    files = {ext: tmp_path / f"cloud.{ext}" for ext in ("ply", "pcd", "xyz", "pts", "npy", "npz")}
    for ext in ("ply", "pcd", "xyz", "pts"):
        write_ply_cloud(files[ext], xyz)
    np.save(files["npy"], xyz)
    np.savez(files["npz"], points=xyz, label=np.array(3))
    return files


@pytest.fixture
def mesh_files(tmp_path: Path) -> dict[str, Path]:
    """A sphere mesh as .obj, .off, .stl and .ply (with faces)."""
    mesh = o3d.geometry.TriangleMesh.create_sphere(radius=2.0, resolution=20)
    mesh.compute_triangle_normals()  # the STL writer needs them
    files = {ext: tmp_path / f"sphere.{ext}" for ext in ("obj", "off", "stl", "ply")}
    for path in files.values():
        assert o3d.io.write_triangle_mesh(str(path), mesh)
    return files


# ---- reading -------------------------------------------------------------------------------------------------


def test_every_cloud_format_gives_the_same_model_input(cloud_files):
    mod = modality()
    ref = mod.prepare(cloud_files["npy"])
    assert ref.shape == (256, 3) and ref.dtype == torch.float32
    for ext, path in cloud_files.items():
        atol = 0 if ext in ("ply", "npy", "npz") else 1e-6  # .pcd stores float32, .xyz/.pts text
        torch.testing.assert_close(mod.prepare(path), ref, rtol=0, atol=atol, msg=ext)


def test_ply_is_a_mesh_when_its_header_declares_faces(tmp_path, mesh_files):
    assert isinstance(read_point_cloud(mesh_files["ply"]), o3d.geometry.TriangleMesh)
    cloud = read_point_cloud(write_ply_cloud(tmp_path / "c.ply", torus_points(50)))
    assert isinstance(cloud, PointCloud) and cloud.xyz.shape == (50, 3)


@pytest.mark.parametrize("ext", ["obj", "off", "stl", "ply"])
def test_meshes_are_sampled_on_their_surface_the_same_way_every_time(mesh_files, ext):
    mod = modality(extra="normal")
    out = mod.prepare(mesh_files[ext])
    assert out.shape == (256, 6)
    radius = out[:, :3].norm(dim=1)
    assert radius.max() == pytest.approx(1.0) and radius.min() > 0.93  # on the (polyhedral) unit sphere
    normals = out[:, 3:]
    torch.testing.assert_close(normals.norm(dim=1), torch.ones(256))
    assert (normals * out[:, :3]).sum(dim=1).min() > 0.9  # a sphere's faces face outwards
    torch.testing.assert_close(mod.prepare(mesh_files[ext]), out, rtol=0, atol=0)


def test_colours_become_channels_and_clouds_without_them_get_ulip_grey(tmp_path):
    xyz = torus_points(256)
    rgb = np.random.default_rng(0).random((256, 3))
    mod = modality(extra="rgb")
    coloured = mod.prepare(write_ply_cloud(tmp_path / "rgb.ply", xyz, rgb))
    plain = mod.prepare(write_ply_cloud(tmp_path / "plain.ply", xyz))
    torch.testing.assert_close(coloured[:, :3], plain[:, :3])
    order = [int(np.abs(xyz - x).sum(1).argmin()) for x in
             (coloured[:, :3].double().numpy() * np.sqrt(((xyz - xyz.mean(0)) ** 2).sum(1).max()) + xyz.mean(0))]
    np.testing.assert_allclose(coloured[:, 3:].numpy(), rgb[order], atol=1 / 255)  # ply stores 8-bit colour
    assert (plain[:, 3:] == 0.4).all()
    byte_rgb = np.concatenate([xyz, np.round(rgb * 255)], axis=1)
    torch.testing.assert_close(mod.preprocess(byte_rgb)[:, 3:], mod.preprocess(np.concatenate([xyz, np.round(
        rgb * 255) / 255], axis=1))[:, 3:])


# ---- normalisation and resampling -----------------------------------------------------------------------------


def test_normalisation_centres_on_the_mean_and_puts_the_farthest_point_on_the_unit_sphere():
    xyz = torus_points(256)
    out = modality().preprocess(xyz).double().numpy()
    centred = xyz - xyz.mean(0)
    expected = centred / np.sqrt((centred ** 2).sum(1).max())
    np.testing.assert_allclose(np.sort(out, axis=0), np.sort(expected, axis=0), atol=1e-6)  # N = n_points: all kept
    assert np.linalg.norm(out, axis=1).max() == pytest.approx(1.0, abs=1e-6)


def test_larger_clouds_are_reduced_by_farthest_point_sampling():
    xyz = torus_points(1000)
    out = modality().preprocess(xyz).double().numpy()
    centred = xyz - xyz.mean(0)
    unit = centred / np.sqrt((centred ** 2).sum(1).max())
    start = int((centred ** 2).sum(1).argmax())
    fps = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(unit)).farthest_point_down_sample(256, start)
    np.testing.assert_allclose(np.sort(out, axis=0), np.sort(np.asarray(fps.points), axis=0), atol=1e-6)


def test_smaller_clouds_repeat_every_point_then_the_farthest_ones():
    xyz = torus_points(100)
    out = modality().preprocess(xyz).numpy()  # 256 = 2 × 100 + 56
    _, counts = np.unique(out, axis=0, return_counts=True)
    assert len(counts) == 100 and sorted(set(counts.tolist())) == [2, 3] and (counts == 3).sum() == 56


# ---- bad input ------------------------------------------------------------------------------------------------


def test_an_empty_cloud_is_an_empty_input_error_naming_the_file(tmp_path):
    path = tmp_path / "empty.ply"
    path.write_text("ply\nformat ascii 1.0\nelement vertex 0\nproperty float x\nproperty float y\n"
                    "property float z\nend_header\n")
    with pytest.raises(EmptyInputError, match="empty.ply"):
        modality().prepare(path)
    np.save(tmp_path / "empty.npy", np.zeros((0, 3)))
    with pytest.raises(EmptyInputError, match="no points"):
        modality().prepare(tmp_path / "empty.npy")


def test_nan_or_inf_coordinates_are_rejected(tmp_path):
    xyz = torus_points(50)
    xyz[7, 1] = np.nan
    xyz[9, 0] = np.inf
    np.save(tmp_path / "nan.npy", xyz)
    with pytest.raises(InputError, match=r"nan.npy: 2 of 50 points have NaN or Inf coordinates"):
        modality().prepare(tmp_path / "nan.npy")


def test_a_cloud_of_identical_points_is_rejected():
    with pytest.raises(InputError, match="all 20 points are identical"):
        modality().preprocess(np.tile([[1.0, 2.0, 3.0]], (20, 1)))


def test_a_mesh_without_faces_is_rejected(tmp_path):
    path = tmp_path / "points.off"
    path.write_text("OFF\n3 0 0\n0 0 0\n1 0 0\n0 1 0\n")
    with pytest.raises(EmptyInputError, match="points.off: no mesh could be read"):
        modality().prepare(path)
    bare = o3d.geometry.TriangleMesh()
    bare.vertices = o3d.utility.Vector3dVector(torus_points(10))
    with pytest.raises(InputError, match="10 vertices but no faces"):
        modality().preprocess(bare)


@pytest.mark.parametrize("shape", [(50, 2), (50, 4), (3, 50, 3), (50,)])
def test_arrays_that_are_not_n_by_3_or_6_are_rejected(shape):
    with pytest.raises(InputError, match=r"must be \[N, 3\] \(xyz\) or \[N, 6\]"):
        modality().preprocess(np.zeros(shape))


def test_unreadable_files_are_named(tmp_path):
    (tmp_path / "bad.npy").write_bytes(b"not numpy")
    (tmp_path / "bad.ply").write_bytes(b"garbage")
    for name in ("bad.npy", "bad.ply"):
        with pytest.raises(UnreadableInputError, match=name):
            modality().prepare(tmp_path / name)
    with pytest.raises(MissingInputError):
        modality().prepare(tmp_path / "absent.pcd")


def test_normals_are_required_when_configured(tmp_path):
    with pytest.raises(InputError, match="has no normals"):
        modality(extra="normal").prepare(write_ply_cloud(tmp_path / "c.ply", torus_points(40)))


def test_config_is_checked():
    with pytest.raises(ConfigError, match="need n_points"):
        modality(n_groups=300)
    with pytest.raises(ConfigError, match="extra"):
        modality(extra="intensity")


# ---- the model ------------------------------------------------------------------------------------------------


def test_embedding_does_not_depend_on_point_order(tiny_model, tmp_path):
    rng = np.random.default_rng(0)
    inputs, permuted = [], []
    for n in (200, 512, 3000):  # fewer, as many and more points than omni-tiny's n_points
        xyz = torus_points(n, seed=n)
        np.save(tmp_path / f"a{n}.npy", xyz)
        np.save(tmp_path / f"b{n}.npy", xyz[rng.permutation(n)])
        inputs.append(tmp_path / f"a{n}.npy")
        permuted.append(tmp_path / f"b{n}.npy")
    a, b = tiny_model.embed(inputs), tiny_model.embed(permuted)
    assert a.shape == (3, tiny_model.embed_dim)
    np.testing.assert_allclose(a, b, atol=1e-6)
    assert np.abs(a[0] - a[2]).max() > 1e-3  # and different clouds differ


def test_raw_arrays_tensors_and_open3d_geometries_embed_like_files(tiny_model, tmp_path):
    xyz = torus_points(700)
    np.save(tmp_path / "c.npy", xyz)
    from_file = tiny_model.embed(tmp_path / "c.npy")
    geometry = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(xyz))
    for item, kwargs in ((xyz, {"modality": "pointcloud"}), (torch.from_numpy(xyz), {"modality": "pointcloud"}),
                         (geometry, {})):
        np.testing.assert_allclose(tiny_model.embed(item, **kwargs), from_file, atol=1e-6)
    mesh = o3d.geometry.TriangleMesh.create_torus()
    assert tiny_model.embed(mesh).shape == (1, tiny_model.embed_dim)


def test_thumbnail_is_a_depth_coloured_view_of_the_cloud(tmp_path, mesh_files):
    thumb = modality(n_points=2048).thumbnail(mesh_files["obj"], size=48)
    assert thumb.shape == (48, 48, 3) and thumb.dtype == np.uint8
    background = (thumb == 255).all(axis=2)
    rows, cols = np.mgrid[:48, :48]
    radius = np.hypot(rows - 23.5, cols - 23.5) / 23.5  # the unit sphere fills the unit disc of the view
    assert background[radius > 1.1].all() and background[radius < 0.8].mean() < 0.02
    centre = thumb[radius < 0.5].astype(int)  # the front of the sphere hides the back: near, so warm
    assert (centre[:, 0] > centre[:, 2]).mean() > 0.95


def test_render_keeps_the_nearest_point_of_each_pixel():
    to_world = view_rotation()  # rows: the view's x, y and z axes in the cloud's frame
    near, far = np.array([[0.0, 0.0, 0.9]]) @ to_world, np.array([[0.0, 0.0, -0.9]]) @ to_world  # in line
    both = render_depth(np.concatenate([far, near]), 32)
    only_near = render_depth(near, 32)
    only_far = render_depth(far, 32)
    assert (both == only_near).all() and not (only_near == only_far).all()
    lit = ~(only_near == 255).all(axis=2)
    assert only_near[lit][:, 0].mean() > only_far[~(only_far == 255).all(axis=2)][:, 0].mean()  # near is warmer
