"""The quick CPU backend of farthest-point sampling + kNN (fpsample's QuickFPS, scipy's cKDTree) against the torch
sampler it stands in for, its phantom start, and its fallbacks."""

import numpy as np
import open3d as o3d
import pytest
import torch

import omniembed.modalities.point_groups as pg
import omniembed.modalities.point_groups_quick as pgq
from omniembed.errors import MissingExtraError
from omniembed.modalities.point_groups import farthest_point_sample, fps_knn
from omniembed.modalities.point_groups_quick import phantom_cloud, quick_fps_knn, tree_height

pytest.importorskip("fpsample")
pytest.importorskip("scipy.spatial")


def surface_clouds(n: int, seeds: range) -> torch.Tensor:
    """Clouds of ``n`` points on a torus and a box surface, float32 [len(seeds), n, 3]."""
    meshes = [o3d.geometry.TriangleMesh.create_torus(torus_radius=1.0, tube_radius=0.35),
              o3d.geometry.TriangleMesh.create_box(1, 2, 0.3)]
    clouds = []
    for seed in seeds:
        o3d.utility.random.seed(seed)
        clouds.append(np.asarray(meshes[seed % 2].sample_points_uniformly(n).points))
    return torch.from_numpy(np.stack(clouds)).float()


def neighbour_distances(clouds: torch.Tensor, centres: torch.Tensor, neighbours: torch.Tensor) -> torch.Tensor:
    rows = torch.arange(len(clouds))[:, None]
    return (clouds[rows[..., None], neighbours] - clouds[rows, centres][:, :, None]).square().sum(-1)


def test_quick_backend_picks_the_torch_samplers_centres_and_neighbours():
    clouds = surface_clouds(2048, range(4))
    quick_centres, quick_neighbours = fps_knn(clouds, 128, 16, backend="quick")
    torch_centres, torch_neighbours = fps_knn(clouds, 128, 16, backend="torch")
    assert torch.equal(quick_centres, torch_centres)
    torch.testing.assert_close(neighbour_distances(clouds, quick_centres, quick_neighbours),
                               neighbour_distances(clouds, torch_centres, torch_neighbours), rtol=0, atol=1e-6)
    d = neighbour_distances(clouds, quick_centres, quick_neighbours)
    assert bool((d[..., 1:] >= d[..., :-1]).all())  # nearest first


def test_auto_is_the_quick_backend_for_order_free_float32_cpu_clouds(monkeypatch):
    clouds = surface_clouds(1024, range(2))
    calls = []

    def counting(*args):
        calls.append(args[0].shape)
        return quick_fps_knn(*args)

    monkeypatch.setattr(pg, "quick_fps_knn", counting)
    farthest_point_sample(clouds, 32)
    assert calls == [(2, 1024, 3)]


@pytest.mark.parametrize("kwargs", [{"rule": "pointnet2"}, {"start": torch.tensor([5, 7])}, {"pruned": True},
                                    {"dtype": torch.float64}])
def test_exact_requests_never_take_the_quick_backend(monkeypatch, kwargs):
    clouds = surface_clouds(512, range(2)).to(kwargs.pop("dtype", torch.float32))
    monkeypatch.setattr(pg, "quick_fps_knn", lambda *a: pytest.fail("the quick backend was used"))
    centres, _ = fps_knn(clouds, 16, 4, **kwargs)
    assert centres.shape == (2, 16)
    with pytest.raises(ValueError, match="the quick backend needs float32 CPU clouds"):
        fps_knn(clouds, 16, 4, backend="quick", **kwargs)


def test_without_fpsample_auto_falls_back_to_the_torch_sampler(monkeypatch):
    clouds = surface_clouds(1024, range(2))
    expected = fps_knn(clouds, 64, 8, backend="torch")
    monkeypatch.setattr(pg, "quick_fps_available", lambda: False)
    got = fps_knn(clouds, 64, 8)
    assert torch.equal(got[0], expected[0]) and torch.equal(got[1], expected[1])
    monkeypatch.setattr(pgq, "optional", lambda module: None if module == "fpsample" else object())
    with pytest.raises(MissingExtraError, match="'fpsample'.*pip install 'omniembed\\[pointcloud\\]'"):
        fps_knn(clouds, 64, 8, backend="quick")


@pytest.mark.parametrize("seed", [0, 1])
def test_phantom_point_is_below_every_point_and_leads_to_the_farthest_from_the_centroid(seed):
    xyz = surface_clouds(1000, range(seed, seed + 1))[0]
    phantom, first = phantom_cloud(xyz.numpy())
    assert phantom.shape == (1001, 3)
    assert (phantom[:1] < phantom[1:]).all()  # first in every KD-tree split
    assert first == int((xyz - xyz.mean(0)).square().sum(-1).argmax())
    # the reflection keeps every distance: the reflected cloud is the centred cloud up to float32 rounding
    centred = (xyz - xyz.mean(0)).double()
    reflected = torch.from_numpy(phantom[1:]).double()
    torch.testing.assert_close(torch.cdist(reflected, reflected), torch.cdist(centred, centred), rtol=0, atol=1e-5)
    # the first centre is the farthest from the phantom, and every point is nearer to it than to the phantom
    from_phantom = (reflected - torch.from_numpy(phantom[:1]).double()).norm(dim=-1)
    assert int(from_phantom.argmax()) == first
    assert ((reflected - reflected[first]).norm(dim=-1) < from_phantom).all()


def test_a_cloud_of_equal_points_has_no_phantom():
    assert phantom_cloud(np.full((10, 3), 0.25, dtype=np.float32)) is None


def test_clouds_quickfps_cannot_start_are_sampled_by_the_torch_sampler():
    normal = surface_clouds(256, range(1))[0]
    same = torch.full((256, 3), 0.5)  # all points equal: no farthest point to aim the phantom at
    few = surface_clouds(8, range(1))[0].repeat(32, 1)  # 8 distinct points, 16 centres asked for
    clouds = torch.stack([normal, same, few])
    _, _, ok = quick_fps_knn(clouds, 16, 4)
    assert ok.tolist() == [True, False, False]  # QuickFPS picks the phantom again once every distance is 0
    centres, neighbours = fps_knn(clouds, 16, 4, backend="quick")
    torch_centres, torch_neighbours = fps_knn(clouds, 16, 4, backend="torch")
    assert torch.equal(centres[0], torch_centres[0])
    assert ((centres[1] >= 0) & (centres[1] < 256)).all()  # any point of the all-equal cloud is as good
    # the repeated cloud: its 8 distinct points come first, whichever backend sampled it
    assert len({tuple(p) for p in few[centres[2, :8]].tolist()}) == 8
    torch.testing.assert_close(neighbour_distances(clouds, centres, neighbours),
                               neighbour_distances(clouds, torch_centres, torch_neighbours), rtol=0, atol=1e-6)


@pytest.mark.parametrize(("n", "height"), [(2, 1), (1025, 1), (8193, 4), (1 << 20, 11)])
def test_tree_height_keeps_about_512_points_per_bucket(n, height):
    assert tree_height(n) == height
