"""ULIP's loader as a point-cloud preprocessing option: its point order kept, then pc_normalize; colours as stored."""

import numpy as np
import pytest
import torch

from omniembed.errors import ConfigError
from omniembed.modalities.pointcloud import PointCloudConfig, PointCloudModality


def ulip(**overrides) -> PointCloudModality:
    return PointCloudModality(PointCloudConfig(**{"n_points": 256, "n_groups": 16, "group_size": 8,
                                                  "preprocessing": "ulip", **overrides}))


def pc_normalize(xyz: np.ndarray) -> np.ndarray:
    """ULIP's ``pc_normalize``: subtract the mean, divide by the largest norm."""
    centred = xyz - xyz.mean(axis=0)
    return centred / np.sqrt((centred ** 2).sum(axis=1)).max()


def shell(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    v = rng.standard_normal((n, 3))
    return v / np.linalg.norm(v, axis=1, keepdims=True) * rng.uniform(0.5, 2.0, (n, 1)) + [3.0, -1.0, 0.5]


def fps_from_zero(xyz: np.ndarray, n: int) -> list[int]:
    dist, picks = np.full(len(xyz), np.inf), [0]
    for _ in range(n - 1):
        dist = np.minimum(dist, ((xyz - xyz[picks[-1]]) ** 2).sum(1))
        picks.append(int(dist.argmax()))
    return picks


def test_a_cloud_of_n_points_keeps_its_order_and_is_pc_normalized():
    xyz = shell(256)
    out = ulip().preprocess(xyz).double().numpy()
    np.testing.assert_allclose(out, pc_normalize(xyz), atol=1e-6)  # row for row: index 0 stays first


def test_a_larger_cloud_is_reduced_by_farthest_point_sampling_from_index_0_in_pick_order():
    xyz = shell(700, seed=1)
    out = ulip().preprocess(xyz).double().numpy()
    picks = fps_from_zero(xyz.astype(np.float32).astype(np.float64), 256)
    np.testing.assert_allclose(out, pc_normalize(xyz[picks]), atol=1e-6)


def test_a_smaller_cloud_is_cycled_in_order():
    xyz = shell(100, seed=2)
    out = ulip().preprocess(xyz).double().numpy()
    np.testing.assert_allclose(out, pc_normalize(xyz[np.arange(256) % 100]), atol=1e-6)


def test_as_stored_keeps_the_coordinates_unnormalised():
    xyz = shell(300, seed=5)
    out = ulip(preprocessing="ulip_as_stored").preprocess(xyz).double().numpy()
    np.testing.assert_allclose(out, xyz[fps_from_zero(xyz.astype(np.float32).astype(np.float64), 256)], atol=1e-6)


def test_colours_are_appended_as_stored_and_missing_ones_are_ulips_grey():
    xyz, rgb = shell(256, seed=3), np.random.default_rng(3).random((256, 3))
    mod = ulip(extra="rgb")
    coloured = mod.preprocess(np.concatenate([xyz, rgb], axis=1)).double().numpy()
    np.testing.assert_allclose(coloured[:, 3:], rgb, atol=1e-7)  # not centred, not rescaled
    assert (mod.preprocess(xyz)[:, 3:] == torch.tensor(0.4)).all()


def test_ulip_preprocessing_keeps_the_files_order_where_the_default_is_order_free(tiny_model):
    """ULIP's kernel starts at index 0: the converted encoder must see the file's order (the default does not)."""
    config = tiny_model.config.modalities["pointcloud"]
    xyz = shell(config.n_points, seed=4)
    rolled = np.roll(xyz, 17, axis=0)  # rolled[17] is xyz[0]
    free = PointCloudModality(config)
    torch.testing.assert_close(free.preprocess(xyz).sort(dim=0).values, free.preprocess(rolled).sort(dim=0).values)
    kept = PointCloudModality(PointCloudConfig(**{**vars(config), "preprocessing": "ulip"}))
    torch.testing.assert_close(kept.preprocess(rolled), kept.preprocess(xyz).roll(17, dims=0), atol=1e-6, rtol=0)


def test_unknown_preprocessing_or_sampling_rule_is_a_config_error():
    with pytest.raises(ConfigError, match="preprocessing 'ulip3'"):
        ulip(preprocessing="ulip3")
    with pytest.raises(ConfigError, match="fps_rule 'cuda'"):
        ulip(fps_rule="cuda")
