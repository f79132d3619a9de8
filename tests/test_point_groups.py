"""Batched farthest-point sampling, exact k nearest neighbours and grouping."""

import numpy as np
import open3d as o3d
import pytest
import torch

import omniembed.modalities.point_groups as pg
from omniembed.modalities.point_groups import chunk_clouds, farthest_point_sample, fps_knn, group_points


def surface_cloud(n: int, seed: int = 0) -> np.ndarray:
    """``n`` points on a torus surface, float64 [n, 3]: the kind of cloud ULIP's data are."""
    mesh = o3d.geometry.TriangleMesh.create_torus(torus_radius=1.0, tube_radius=0.35)
    o3d.utility.random.seed(seed)
    return np.asarray(mesh.sample_points_uniformly(n).points)


def brute_force_fps(xyz: np.ndarray, n: int, start: int) -> list[int]:
    dist = np.full(len(xyz), np.inf)
    picked = [start]
    for _ in range(n - 1):
        dist = np.minimum(dist, ((xyz - xyz[picked[-1]]) ** 2).sum(1))
        picked.append(int(dist.argmax()))
    return picked


def knn_distances(queries: np.ndarray, points: np.ndarray, k: int) -> np.ndarray:
    d = ((queries[:, None] - points[None]) ** 2).sum(-1)
    return np.sort(d, axis=1)[:, :k]


@pytest.mark.parametrize("pruned", [True, False])
def test_fps_picks_the_same_points_as_open3d_from_the_same_start(pruned):
    xyz = np.random.default_rng(0).standard_normal((3000, 3))
    start = 1234
    ours = farthest_point_sample(torch.from_numpy(xyz)[None], 200, start=torch.tensor([start]), pruned=pruned)[0]
    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(xyz))
    theirs = np.asarray(cloud.farthest_point_down_sample(200, start_index=start).points)
    assert ours[0] == start
    np.testing.assert_array_equal(np.sort(xyz[ours.numpy()], axis=0), np.sort(theirs, axis=0))
    assert ours.tolist() == brute_force_fps(xyz, 200, start)  # and in farthest-first order


def test_fps_starts_from_the_point_farthest_from_the_centroid():
    xyz = surface_cloud(1000)
    idx = farthest_point_sample(torch.from_numpy(xyz)[None], 50)[0]
    start = int(((xyz - xyz.mean(0)) ** 2).sum(1).argmax())
    assert idx.tolist() == brute_force_fps(xyz, 50, start)


def test_fps_centres_cover_the_cloud_and_stay_apart():
    xyz = torch.from_numpy(surface_cloud(4096)).float()[None]
    centres = xyz[0, farthest_point_sample(xyz, 128)[0]]
    covering = torch.cdist(xyz[0], centres).amin(dim=1).max()  # farthest any point is from its nearest centre
    separation = torch.pdist(centres).min()
    assert separation >= covering  # the farthest-point property: no two centres nearer than the covering radius
    assert covering < 0.35  # 128 centres on a torus of area ≈ 13.8 leave no hole wider than a tube radius


def test_fps_chooses_the_same_points_whatever_the_order_of_the_cloud():
    xyz = torch.from_numpy(surface_cloud(2000)).float()
    perm = torch.randperm(2000, generator=torch.Generator().manual_seed(1))
    a = xyz[farthest_point_sample(xyz[None], 64)[0]]
    b = xyz[perm][farthest_point_sample(xyz[perm][None], 64)[0]]
    torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize("n", [4096, 1000])  # 1000: the last chunk is padded with repeats
def test_knn_of_each_centre_is_exact(n):
    clouds = torch.stack([torch.from_numpy(surface_cloud(n, seed)) for seed in range(3)]).float()
    centres, neighbours = fps_knn(clouds, 64, 16)
    assert centres.shape == (3, 64) and neighbours.shape == (3, 64, 16)
    for b in range(3):
        pts = clouds[b].numpy().astype(np.float64)
        q = pts[centres[b].numpy()]
        got = ((pts[neighbours[b].numpy()] - q[:, None]) ** 2).sum(-1)
        np.testing.assert_allclose(got, knn_distances(q, pts, 16), atol=1e-6)
        assert all(len(set(row)) == 16 for row in neighbours[b].tolist())  # no point twice (padding repeats)


def test_knn_agrees_with_open3d_kdtree_on_a_volume():
    pts = np.random.default_rng(3).standard_normal((2048, 3))
    centres, neighbours = fps_knn(torch.from_numpy(pts)[None], 32, 8)
    tree = o3d.geometry.KDTreeFlann(o3d.geometry.PointCloud(o3d.utility.Vector3dVector(pts)))
    for c, row in zip(centres[0].tolist(), neighbours[0].tolist()):
        _, idx, _ = tree.search_knn_vector_3d(pts[c], 8)
        assert row == list(idx)


def test_the_wider_search_finds_the_exact_neighbours_within_a_radius_bound():
    pts = surface_cloud(2000)
    chunks = chunk_clouds(torch.from_numpy(pts)[None])
    flat = chunks.flat()[0].numpy()
    positions = torch.tensor([0, 17, 500, 1999])
    d = ((flat[positions.numpy(), None] - flat[None]) ** 2).sum(-1)
    radius2 = torch.from_numpy(np.sort(d, axis=1)[:, 40])  # any bound with at least k points inside will do
    found = pg._knn_within(chunks, torch.zeros(4, dtype=torch.long), positions, radius2, 16)
    got = np.take_along_axis(d, found.numpy(), axis=1)
    np.testing.assert_allclose(got, np.sort(d, axis=1)[:, :16], atol=1e-12)


def test_pruned_and_dense_paths_agree():
    clouds = torch.stack([torch.from_numpy(surface_cloud(1500, s)) for s in range(2)]).float()
    c1, n1 = fps_knn(clouds, 48, 12, pruned=True)
    c2, n2 = fps_knn(clouds, 48, 12, pruned=False)
    assert torch.equal(c1, c2)
    d1 = (clouds[torch.arange(2)[:, None, None], n1] - clouds[torch.arange(2)[:, None], c1][:, :, None]).norm(dim=-1)
    d2 = (clouds[torch.arange(2)[:, None, None], n2] - clouds[torch.arange(2)[:, None], c2][:, :, None]).norm(dim=-1)
    torch.testing.assert_close(d1, d2)


def test_clouds_of_repeated_points_give_each_distinct_point_first():
    unique = torch.from_numpy(surface_cloud(10)).float()
    cloud = unique.repeat(7, 1)[None]  # 70 points, 10 distinct
    centres, neighbours = fps_knn(cloud, 20, 7)
    assert len({tuple(p) for p in cloud[0, centres[0, :10]].tolist()}) == 10
    # a centre's 7 nearest are its 7 copies, at distance 0
    assert (cloud[0, neighbours[0]] == cloud[0, centres[0]][:, None]).all()


def test_bad_sizes_are_rejected():
    pts = torch.rand(1, 10, 3)
    with pytest.raises(ValueError, match="cannot pick 11 of 10"):
        farthest_point_sample(pts, 11)
    with pytest.raises(ValueError, match="11 neighbours among 10"):
        fps_knn(pts, 4, 11)
    with pytest.raises(ValueError, match="start must hold"):
        farthest_point_sample(pts, 4, start=torch.tensor([10]))


def test_chunks_hold_every_point_once_in_z_order():
    pts = torch.rand(2, 100, 3)
    chunks = chunk_clouds(pts, 16)
    assert chunks.shape == (2, 7, 16)
    for b in range(2):
        assert sorted(chunks.order[b, :100].tolist()) == list(range(100))
        torch.testing.assert_close(chunks.flat()[b], pts[b, chunks.order[b, :100]])
    boxes_lo = chunks.mid - chunks.half
    gathered = chunks.axes.view(3, 2, 7, 16).permute(1, 0, 2, 3)  # [B, 3, M, C]
    assert (gathered >= boxes_lo[..., None] - 1e-7).all()


def test_groups_are_centred_neighbourhoods_with_extra_channels_kept():
    xyz = torch.from_numpy(surface_cloud(600)).float()
    rgb = torch.rand(600, 3)
    clouds = torch.cat([xyz, rgb], dim=1)[None].repeat(2, 1, 1)
    groups, centres = group_points(clouds, n_groups=16, group_size=8)
    assert groups.shape == (2, 16, 8, 6) and centres.shape == (2, 16, 3)
    centre_idx, neighbours = fps_knn(xyz[None], 16, 8)
    torch.testing.assert_close(groups[0, ..., :3] + centres[0, :, None], xyz[neighbours[0]])
    torch.testing.assert_close(groups[0, ..., 3:], rgb[neighbours[0]])
    torch.testing.assert_close(groups[0, :, 0, :3], torch.zeros(16, 3))  # each centre is its own nearest


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_gpu_gives_the_cpu_centres_and_neighbours():
    clouds = torch.stack([torch.from_numpy(surface_cloud(2048, s)) for s in range(2)]).float()
    c_cpu, n_cpu = fps_knn(clouds, 64, 16)
    c_gpu, n_gpu = fps_knn(clouds.cuda(), 64, 16)
    assert torch.equal(c_gpu.cpu(), c_cpu)
    assert torch.equal(n_gpu.cpu().sort(-1).values, n_cpu.sort(-1).values)
