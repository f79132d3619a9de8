"""Training-time point-cloud augmentations: seeded, batched, shape-preserving, each doing exactly its job."""

import math

import pytest
import torch
import torch.nn.functional as F

from omniembed.modalities.point_augment import (Compose, Jitter, Outline, PointDropout, RandomScale, RotateUp,
                                                SlabDepth, SlabFaces, Thin, default_point_augment)


def clouds_with_normals(b: int = 4, n: int = 200) -> torch.Tensor:
    """Points on the unit sphere with their outward normals (= the points) and a colour-like 7th channel."""
    xyz = F.normalize(torch.randn(b, n, 3, generator=torch.Generator().manual_seed(0)), dim=-1)
    return torch.cat([xyz, xyz.clone(), torch.rand(b, n, 1)], dim=-1)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_the_same_seed_gives_the_same_augmentation_and_another_seed_another():
    clouds = clouds_with_normals()
    augment = default_point_augment(normals=True)
    a, b, c = augment(clouds, gen(1)), augment(clouds, gen(1)), augment(clouds, gen(2))
    assert a.shape == clouds.shape
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert (a - c).abs().max() > 0.1


@pytest.mark.parametrize("up", [0, 1, 2])
def test_rotation_turns_about_the_up_axis_only(up):
    clouds = clouds_with_normals()
    out = RotateUp(up_axis=up, normals=True)(clouds, gen())
    torch.testing.assert_close(out[..., up], clouds[..., up])  # height kept
    other = [a for a in range(3) if a != up]
    torch.testing.assert_close(out[..., other].norm(dim=-1), clouds[..., other].norm(dim=-1))  # radius kept
    torch.testing.assert_close(out[..., 3:6], out[..., :3])  # normals turned with the points
    torch.testing.assert_close(out[..., 6], clouds[..., 6])
    angles = torch.atan2(out[..., other[1]], out[..., other[0]]) - torch.atan2(clouds[..., other[1]],
                                                                              clouds[..., other[0]])
    spread = torch.remainder(angles - angles[:, :1] + math.pi, 2 * math.pi) - math.pi
    assert spread.abs().max() < 1e-5  # one angle per cloud
    assert len({round(float(a), 4) for a in angles[:, 0]}) == 4  # and a different one for each cloud


def test_scale_is_per_axis_within_range_and_turns_normals_the_right_way():
    clouds = clouds_with_normals()
    out = RandomScale(low=0.5, high=2.0, normals=True)(clouds, gen())
    factor = out[..., :3] / clouds[..., :3]
    torch.testing.assert_close(factor, factor[:, :1].expand_as(factor))
    assert factor.min() >= 0.5 and factor.max() <= 2.0
    # on the ellipsoid Σ (x_a / s_a)² = 1 the normal is ∝ (x_a / s_a²)
    torch.testing.assert_close(out[..., 3:6], F.normalize(out[..., :3] / factor ** 2, dim=-1))
    uniform = RandomScale(anisotropic=False)(clouds, gen())[..., :3] / clouds[..., :3]
    torch.testing.assert_close(uniform, uniform[..., :1].expand_as(uniform))


def test_jitter_moves_coordinates_by_at_most_the_clip_and_leaves_other_channels():
    clouds = clouds_with_normals()
    out = Jitter(sigma=0.02, clip=0.03)(clouds, gen())
    moved = out[..., :3] - clouds[..., :3]
    assert moved.abs().max() <= 0.03 + 1e-7 and moved.std() == pytest.approx(0.02, rel=0.2)
    torch.testing.assert_close(out[..., 3:], clouds[..., 3:])


def test_dropout_replaces_a_bounded_share_of_points_by_the_first_point():
    clouds = clouds_with_normals(b=8, n=1000)
    out = PointDropout(max_ratio=0.5)(clouds, gen())
    assert out.shape == clouds.shape
    changed = (out != clouds).any(dim=-1)
    assert (out[changed] == out[:, :1].expand_as(out)[changed]).all()
    share = changed.float().mean(dim=1)
    assert share.max() <= 0.56 and share.min() < share.max()
    torch.testing.assert_close(PointDropout(max_ratio=0.0)(clouds, gen()), clouds)


def test_thinning_keeps_a_bounded_share_and_fills_the_rest_with_copies_spread_over_the_kept_points():
    clouds = clouds_with_normals(b=8, n=1000)
    out = Thin(max_ratio=0.75)(clouds, gen())
    assert out.shape == clouds.shape
    for cloud, thinned in zip(clouds, out):
        kept = (thinned == cloud).all(dim=-1)                        # points left in their own slot
        assert 0.24 <= kept.float().mean() <= 1.0
        # every other slot holds a copy (all channels) of a kept point, and the copies are of many points, not one
        copies = thinned[~kept]
        match = (copies[:, None, :] == cloud[kept][None, :, :]).all(dim=-1)  # [copies, kept]
        assert match.any(dim=1).all()
        if len(copies) > 50:
            assert match.float().argmax(dim=1).unique().numel() > len(copies) // 4
    share = (out == clouds).all(dim=-1).float().mean(dim=1)
    assert share.min() < share.max()
    torch.testing.assert_close(Thin(max_ratio=0.0)(clouds, gen()), clouds)


def test_compose_applies_its_transforms_in_order_from_one_generator():
    clouds = clouds_with_normals()
    steps = [RotateUp(), Jitter()]
    g = gen(5)
    expected = steps[1](steps[0](clouds, g), g)
    torch.testing.assert_close(Compose(steps)(clouds, gen(5)), expected, rtol=0, atol=0)


def turned_slab(depth: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A 2 × 1 × ``depth`` slab of 4000 points (two clouds) and the turn, 30° about x and y, that makes its thin axis
    no coordinate axis: the slab in its own axes ``[2, 4000, 3]`` and the ``[3, 3]`` matrix to multiply it by."""
    flat = (torch.rand(2, 4000, 3, generator=gen(seed)) - 0.5) * torch.tensor([2.0, 1.0, depth])
    a = math.radians(30)
    rx = torch.tensor([[1, 0, 0], [0, math.cos(a), -math.sin(a)], [0, math.sin(a), math.cos(a)]])
    ry = torch.tensor([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]])
    return flat, (ry @ rx).T


def test_slab_depth_scales_the_thinnest_axis_of_a_turned_slab_only():
    flat, turn = turned_slab(0.1, seed=3)
    clouds = flat @ turn + torch.tensor([0.3, -0.2, 0.5])
    out = SlabDepth(low=3.0, high=3.0)(clouds, gen())
    back = (out - out.mean(dim=1, keepdim=True)) @ turn.T  # undo the turn: the slab's own axes again
    spread = back.std(dim=1)
    torch.testing.assert_close(spread, flat.std(dim=1) * torch.tensor([1.0, 1.0, 3.0]), rtol=0.02, atol=1e-3)
    torch.testing.assert_close(out.mean(dim=1), clouds.mean(dim=1), rtol=0, atol=1e-5)  # about the centroid


def test_slab_depth_draws_factors_in_its_range_and_keeps_normals_unit():
    clouds = clouds_with_normals(b=64)
    clouds[..., 2] *= 0.2  # a flattened sphere: z is the thin axis
    clouds[..., 3:6] = F.normalize(clouds[..., :3] / torch.tensor([1.0, 1.0, 0.04]), dim=-1)
    out = SlabDepth(low=0.5, high=2.0, normals=True)(clouds, gen())
    ratio = out[..., 2].std(dim=1) / clouds[..., 2].std(dim=1)
    assert ratio.min() >= 0.5 - 1e-3 and ratio.max() <= 2.0 + 1e-3 and ratio.max() / ratio.min() > 2.5
    torch.testing.assert_close(out[..., 3:6].norm(dim=-1), torch.ones(64, 200))
    torch.testing.assert_close(out[..., 6], clouds[..., 6])


def test_slab_faces_moves_a_turned_slab_onto_its_two_faces():
    flat, turn = turned_slab(0.3, seed=4)  # after the move every point is on one of two planes
    out = SlabFaces(p=1.0)(flat @ turn, gen())
    back = out @ turn.T                                                   # the slab's own axes again
    height = back[..., 2] - flat[..., 2].mean(dim=1, keepdim=True)        # from the mid-plane
    torch.testing.assert_close(height.abs(), torch.full((2, 4000), 0.95 * 0.15), rtol=0, atol=6e-3)  # ± the axis fit
    nearer = (height > 0) == (flat[..., 2] > flat[..., 2].mean(dim=1, keepdim=True))
    assert nearer.float().mean() > 0.99                                   # each to its nearer face
    torch.testing.assert_close(back[..., :2], flat[..., :2], rtol=0, atol=6e-3)  # the outline is unmoved


def test_slab_faces_moves_the_chosen_share_of_clouds_and_sets_face_normals():
    clouds = clouds_with_normals(b=200)
    clouds[..., 2] *= 0.2
    out = SlabFaces(p=0.5, normals=True)(clouds, gen())
    moved = (out[..., :3] - clouds[..., :3]).abs().amax(dim=(1, 2)) > 1e-6
    assert 0.35 < moved.float().mean() < 0.65
    torch.testing.assert_close(out[moved][..., 3:5], torch.zeros_like(out[moved][..., 3:5]), rtol=0, atol=0.05)
    torch.testing.assert_close(out[~moved], clouds[~moved])
    torch.testing.assert_close(out[..., 6], clouds[..., 6])


def turned_disc(b: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``b`` filled unit discs of 512 points, 0.05 thick, turned as :func:`turned_slab`: the clouds ``[b, 512, 3]``,
    each point's radius in its disc ``[b, 512]`` and the turn."""
    g = gen(seed)
    radius, angle = torch.rand(b, 512, generator=g).sqrt(), torch.rand(b, 512, generator=g) * 2 * math.pi
    flat = torch.stack([radius * angle.cos(), radius * angle.sin(), (torch.rand(b, 512, generator=g) - 0.5) * 0.05],
                       dim=-1)
    turn = turned_slab(0.05, seed)[1]
    return flat @ turn, radius, turn


def test_outline_keeps_a_turned_disc_s_rim_and_fills_the_other_slots_with_copies_of_it():
    clouds, radius, turn = turned_disc(2, seed=6)
    out = Outline(p=1.0, keep=0.4)(clouds, gen())
    assert ((out[:, :, None] - clouds[:, None]).abs().amax(dim=-1) == 0).any(dim=-1).all()  # only its own points
    assert [len(torch.unique(o, dim=0)) for o in out] == [round(0.4 * 512)] * 2             # the kept share
    rim = (out @ turn.T)[..., :2].norm(dim=-1)
    # the outer 40 % of a disc's area lies beyond r = √0.6 ≈ 0.77 (mean r there 0.89; the whole disc's is 0.67)
    assert radius.mean() < 0.7 and rim.mean() > 0.85 and (rim > 0.6).float().mean() > 0.97


def test_outline_changes_the_chosen_share_of_clouds_only():
    clouds = torch.cat([turned_disc(100, seed=7)[0], torch.rand(100, 512, 1)], dim=-1)  # a colour rides along
    out = Outline(p=0.5, keep=0.6)(clouds, gen())
    changed = (out - clouds).abs().amax(dim=(1, 2)) > 0
    assert 0.35 < changed.float().mean() < 0.65
    torch.testing.assert_close(out[~changed], clouds[~changed], rtol=0, atol=0)
    assert ((out[changed][:, :, None] - clouds[changed][:, None]).abs().amax(dim=-1) == 0).any(dim=-1).all()
