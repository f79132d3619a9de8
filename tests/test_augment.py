"""Training-time augmentation (``data.augment``): the image affine, the point-cloud chain, seeding, bad configs."""

from __future__ import annotations

import math
import re

import pytest
import torch

from omniembed.errors import ConfigError
from omniembed.modalities.image_augment import RandomAffine
from omniembed.pretrain.augment import Augmenter, build_transform
from omniembed.pretrain.config import load_config


def square_images(n: int = 8, size: int = 32) -> torch.Tensor:
    """[n, 3, size, size] normalised scans: background −1, a centred bright square (+1) filling the middle half."""
    images = torch.full((n, 3, size, size), -1.0)
    images[..., size // 4: 3 * size // 4, size // 4: 3 * size // 4] = 1.0
    return images


def ink(images: torch.Tensor) -> torch.Tensor:
    """Share of each image's pixels that are bright: [n]."""
    return (images[:, 0] > 0).float().mean(dim=(1, 2))


def test_affine_at_full_scale_without_shift_or_turn_is_the_identity():
    images = torch.randn(4, 3, 16, 16)
    out = RandomAffine(min_scale=1.0, max_scale=1.0, translate=0.0)(images, torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, images, atol=1e-5, rtol=0)


def test_affine_zoom_out_shrinks_the_content_and_keeps_it_inside_the_frame():
    images = square_images()
    out = RandomAffine(min_scale=0.5, max_scale=0.5, translate=1.0)(images, torch.Generator().manual_seed(0))
    assert out.shape == images.shape and out.dtype == images.dtype
    # half the size → a quarter of the area, whole wherever it moved; the border padding is background
    torch.testing.assert_close(ink(out), ink(images) / 4, atol=0.01, rtol=0)
    assert out.min() >= -1.0 - 1e-6 and out.max() <= 1.0 + 1e-6
    centres = [torch.nonzero(o[0] > 0).float().mean(0) for o in out]
    assert len({tuple(c.round().tolist()) for c in centres}) > 4  # each image moved on its own


def test_affine_turns_by_at_most_the_given_angle():
    images = torch.full((64, 1, 33, 33), -1.0)
    images[..., 16, 4:29] = 1.0  # a horizontal bar through the centre
    out = RandomAffine(min_scale=1.0, translate=0.0, degrees=30)(images, torch.Generator().manual_seed(1))
    angles = []
    for o in out:
        ys, xs = torch.nonzero(o[0] > 0, as_tuple=True)
        angles.append(math.degrees(math.atan2(torch.cov(torch.stack([xs, ys]).float())[0, 1] * 2,
                                              (xs.float().var() - ys.float().var()).item()) / 2))
    assert max(abs(a) for a in angles) <= 32 and max(angles) > 15 and min(angles) < -15


def test_the_same_step_draws_the_same_augmentation_and_steps_and_ranks_differ():
    specs = {"image": {"kind": "affine", "min_scale": 0.4}}
    images = square_images()
    first, again = Augmenter(specs, ["image"], seed=7), Augmenter(specs, ["image"], seed=7)
    a = first({"image": images}, step=3)["image"]
    assert torch.equal(a, again({"image": images}, step=3)["image"])
    assert not torch.equal(a, first({"image": images}, step=4)["image"])
    assert not torch.equal(a, Augmenter(specs, ["image"], seed=7, rank=1)({"image": images}, step=3)["image"])


def test_modalities_without_augmentation_pass_through_untouched():
    tokens = torch.randint(0, 100, (8, 16))
    out = Augmenter({"image": {"kind": "affine"}}, ["image", "text"], seed=0)({"text": tokens}, step=0)
    assert out["text"] is tokens and "image" not in out


def test_point_augmentation_keeps_the_cloud_shape_and_moves_the_points():
    clouds = torch.randn(4, 256, 3)
    out = build_transform("pointcloud", {"kind": "points", "dropout": 0.0})(clouds, torch.Generator().manual_seed(0))
    assert out.shape == clouds.shape and not torch.allclose(out, clouds)
    still = build_transform("pointcloud", {"kind": "points", "max_angle": 0, "scale": [1, 1], "jitter": 0,
                                           "dropout": 0})(clouds, torch.Generator().manual_seed(0))
    torch.testing.assert_close(still, clouds)


@pytest.mark.parametrize("augment, message", [
    ("{image: {kind: blur}}", "data.augment.image.kind: unknown augmentation 'blur'"),
    ("{image: {kind: affine, zoom: 2}}", "unknown config key(s) in data.augment.image: zoom"),
    ("{image: {kind: affine, min_scale: 0.9, max_scale: 0.5}}", "data.augment.image: RandomAffine: need 0 < min_scale"),
    ("{image: {min_scale: 0.5}}", "data.augment.image: expected {kind: affine | points"),
    ("{pointcloud: {kind: points, scale: [2]}}", "data.augment.pointcloud: scale must be [low, high]"),
])
def test_bad_augmentation_config_names_the_key(augment, message):
    overrides = ["data.datasets=[{name: d, shards: [x.tar], pairs: [[image, text]]}]", f"data.augment={augment}"]
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(None, overrides)


def test_augmenting_a_modality_the_model_lacks_or_a_non_tensor_batch_is_refused():
    with pytest.raises(ConfigError, match="data.augment names imgae, which the model lacks"):
        Augmenter({"imgae": {"kind": "affine"}}, ["image", "text"], seed=0)
    video = Augmenter({"video": {"kind": "affine"}}, ["image", "video"], seed=0)
    with pytest.raises(ConfigError, match="data.augment.video: its batches are dict, not tensors"):
        video({"video": {"frames": torch.zeros(2, 1, 3, 2, 8, 8)}}, step=0)
