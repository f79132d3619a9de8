"""A PLY file must hold every vertex its header declares, and finite values: open3d alone fills missing points
with uninitialised memory (binary) or zeros (ASCII) and only prints a warning. A PCD header is checked before
open3d reads the file (a damaged one crashed the process)."""

from pathlib import Path

import numpy as np
import open3d as o3d
import pytest

from omniembed.errors import UnreadableInputError
from omniembed.modalities.ply import read_header
from omniembed.modalities.pointcloud import PointCloudConfig, PointCloudModality, read_point_cloud

N = 300


def _cloud(tmp_path: Path, ascii: bool) -> Path:
    xyz = np.random.default_rng(0).normal(size=(N, 3))
    path = tmp_path / f"cloud_{'ascii' if ascii else 'binary'}.ply"
    assert o3d.io.write_point_cloud(str(path), o3d.geometry.PointCloud(o3d.utility.Vector3dVector(xyz)),
                                    write_ascii=ascii)
    return path


def _mesh(tmp_path: Path, ascii: bool) -> Path:
    path = tmp_path / f"mesh_{'ascii' if ascii else 'binary'}.ply"
    assert o3d.io.write_triangle_mesh(str(path), o3d.geometry.TriangleMesh.create_sphere(resolution=8),
                                      write_ascii=ascii)
    return path


def _cut(path: Path, keep: float) -> Path:
    data = path.read_bytes()
    offset = read_header(path).data_offset
    cut = path.with_name(f"cut_{keep}_{path.name}")
    cut.write_bytes(data[:offset + int((len(data) - offset) * keep)])
    return cut


@pytest.mark.parametrize("ascii", [True, False], ids=["ascii", "binary"])
@pytest.mark.parametrize("keep", [0.0, 0.5, 0.99])
def test_a_truncated_ply_cloud_is_refused_naming_the_file(tmp_path, ascii, keep):
    whole = _cloud(tmp_path, ascii)
    assert len(read_point_cloud(whole).xyz) == N
    cut = _cut(whole, keep)
    with pytest.raises(UnreadableInputError, match=rf"{cut.name}: truncated PLY: .*declares {N} vert"):
        read_point_cloud(cut)
    mod = PointCloudModality(PointCloudConfig(n_points=64, n_groups=8, group_size=8))
    with pytest.raises(UnreadableInputError, match=cut.name):
        mod.prepare(cut)


@pytest.mark.parametrize("ascii", [True, False], ids=["ascii", "binary"])
def test_a_truncated_ply_mesh_is_refused(tmp_path, ascii):
    whole = _mesh(tmp_path, ascii)
    assert len(read_point_cloud(whole).vertices) == read_header(whole).count("vertex")
    for keep in (0.3, 0.97):  # inside the vertices, inside the faces
        with pytest.raises(UnreadableInputError, match="truncated PLY"):
            read_point_cloud(_cut(whole, keep))


def test_a_ply_whose_last_vertex_line_is_cut_mid_way_is_refused(tmp_path):
    path = tmp_path / "c.ply"
    path.write_text("ply\nformat ascii 1.0\nelement vertex 2\nproperty float x\nproperty float y\n"
                    "property float z\nend_header\n0 1 2\n3 4\n")
    with pytest.raises(UnreadableInputError, match="last vertex line has 2 values for 3 properties"):
        read_point_cloud(path)


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_a_ply_holding_non_finite_coordinates_is_refused(tmp_path, value):
    path = tmp_path / "c.ply"
    path.write_text("ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y\n"
                    f"property float z\nend_header\n0 1 2\n3 {value} 5\n6 7 8\n")
    with pytest.raises(UnreadableInputError, match="c.ply: 1 points of the file have NaN or Inf coordinates"):
        read_point_cloud(path)


def test_a_binary_ply_with_a_nan_vertex_is_refused(tmp_path):
    xyz = np.random.default_rng(1).normal(size=(20, 3))
    xyz[7, 2] = np.nan
    path = tmp_path / "nan.ply"
    assert o3d.io.write_point_cloud(str(path), o3d.geometry.PointCloud(o3d.utility.Vector3dVector(xyz)))
    with pytest.raises(UnreadableInputError, match="NaN or Inf coordinates"):
        read_point_cloud(path)


@pytest.mark.parametrize("header, problem", [
    ("ply\nformat ascii 1.0\nelement vertex -3\nend_header\n", "element count '-3'"),
    ("ply\nformat ascii 1.0\nelement vertex 1\nproperty quad x\nend_header\n", "unknown type"),
    ("ply\nformat binary_middle_endian 1.0\nelement vertex 1\nend_header\n", "format 'binary_middle_endian'"),
    ("ply\nformat ascii 1.0\nelement vertex 1\nproperty float x\n", "no end_header"),
])
def test_a_malformed_ply_header_is_refused(tmp_path, header, problem):
    path = tmp_path / "h.ply"
    path.write_text(header + "0\n")
    with pytest.raises(UnreadableInputError, match=f"h.ply: .*{problem}"):
        read_point_cloud(path)


def test_a_complete_ply_with_trailing_bytes_still_reads(tmp_path):
    whole = _cloud(tmp_path, ascii=False)
    whole.write_bytes(whole.read_bytes() + b"\0" * 7)
    assert len(read_point_cloud(whole).xyz) == N


# ---- PCD: open3d's reader trusts the header and crashed the process on a damaged one ------------------------------
def _pcd(tmp_path: Path, data: str) -> Path:
    path = tmp_path / f"cloud_{data}.pcd"
    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(np.random.default_rng(0).normal(size=(N, 3))))
    assert o3d.io.write_point_cloud(str(path), cloud, write_ascii=data == "ascii", compressed=data == "compressed")
    return path


@pytest.mark.parametrize("data", ["ascii", "binary", "compressed"])
def test_a_pcd_reads_whole_and_is_refused_truncated(tmp_path, data):
    whole = _pcd(tmp_path, data)
    assert len(read_point_cloud(whole).xyz) == N
    cut = whole.with_name(f"cut_{whole.name}")
    cut.write_bytes(whole.read_bytes()[: int(whole.stat().st_size * 0.8)])
    with pytest.raises(UnreadableInputError, match=rf"{cut.name}: damaged PCD file: (truncated|compressed data)"):
        read_point_cloud(cut)


@pytest.mark.parametrize("find, replace, problem", [
    ("COUNT 1 1 1", "COUNT 1 1 q", "COUNT 'q' is not a positive integer"),  # this one crashed open3d (SIGSEGV)
    ("DATA binary", "DATA bilary", "DATA 'bilary' is not one of"),
    ("SIZE 4 4 4", "SIZE 4 4 3", "type F of size 3"),
    ("POINTS 300", "POINTS 301", "≠ POINTS 301"),
    ("FIELDS x y z", "FIELDS x y", "one value per field"),
])
def test_a_damaged_pcd_header_is_refused_before_open3d_reads_it(tmp_path, find, replace, problem):
    whole = _pcd(tmp_path, "binary")
    text = whole.read_bytes()
    assert find.encode() in text
    whole.write_bytes(text.replace(find.encode(), replace.encode(), 1))
    with pytest.raises(UnreadableInputError, match=rf"damaged PCD file: .*{problem}"):
        read_point_cloud(whole)
