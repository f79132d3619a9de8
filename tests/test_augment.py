"""Training-time augmentation (``data.augment``): the image affine, the point-cloud chain, the spectrogram warps and
masks, seeding, bad configs."""

from __future__ import annotations

import math
import re

import pytest
import torch

from omniembed.errors import ConfigError
from omniembed.modalities.audio_augment import SpecAugment
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


def test_micro_batches_of_a_step_draw_their_own_augmentation():
    specs = {"image": {"kind": "affine", "min_scale": 0.4}}
    images = square_images()
    augment = Augmenter(specs, ["image"], seed=7)
    parts = [augment({"image": images}, step=3, part=p)["image"] for p in range(3)]
    assert torch.equal(parts[0], augment({"image": images}, step=3)["image"])  # part 0 is the unsplit step's draw
    assert not torch.equal(parts[0], parts[1]) and not torch.equal(parts[1], parts[2])
    assert torch.equal(parts[2], augment({"image": images}, step=3, part=2)["image"])


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


def test_point_augmentation_tilts_about_the_other_axes_within_the_angle_and_keeps_radii():
    clouds = torch.zeros(256, 1, 3)
    clouds[:, 0, 1] = 1.0  # one point on the up axis: only a tilt can move it
    out = build_transform("pointcloud", {"kind": "points", "max_angle": 0, "scale": [1, 1], "jitter": 0,
                                         "dropout": 0, "tilt": 0.3})(clouds, torch.Generator().manual_seed(0))
    torch.testing.assert_close(out.norm(dim=-1), clouds.norm(dim=-1))
    off_up = torch.acos(out[:, 0, 1].clamp(max=1))  # angle from the up axis: both tilts together, each ≤ 0.3
    assert off_up.max() <= 0.3 * math.sqrt(2) + 1e-4 and off_up.max() > 0.25


SPEC_OFF = {"time_stretch": [1, 1], "freq_warp": [1, 1], "freq_masks": 0, "time_masks": 0}


def ramp(n: int, axis: int, m: int = 40, t: int = 100) -> torch.Tensor:
    """[n, 1, 1, m, t] filterbanks whose value is the mel bin (axis 0) or the frame + 1 (axis 1)."""
    grid = torch.arange(m, dtype=torch.float32)[:, None].expand(m, t) if axis == 0 else \
        torch.arange(1, t + 1, dtype=torch.float32)[None, :].expand(m, t)
    return grid.expand(n, 1, 1, m, t).clone()


def test_spec_augment_switched_off_is_the_identity():
    features = torch.randn(3, 2, 1, 40, 100)
    out = SpecAugment(**SPEC_OFF)(features, torch.Generator().manual_seed(0))
    assert torch.equal(out, features)  # no resampling at all


def test_frequency_warp_scales_the_mel_axis_about_the_lowest_bin_and_repeats_the_top():
    up = SpecAugment(**{**SPEC_OFF, "freq_warp": [2, 2]})(ramp(2, axis=0), torch.Generator().manual_seed(0))
    torch.testing.assert_close(up[0, 0, 0, :, 0], torch.arange(40.0) / 2)  # bin f shows what bin f / 2 held
    down = SpecAugment(**{**SPEC_OFF, "freq_warp": [0.5, 0.5]})(ramp(2, axis=0), torch.Generator().manual_seed(0))
    torch.testing.assert_close(down[0, 0, 0, :20, 0], torch.arange(20.0) * 2)
    top = down[0, 0, 0, 20:, :]
    torch.testing.assert_close(top, torch.full_like(top, 39.0))  # read from above the top: the top bin, not silence


def test_time_stretch_resamples_the_frames_and_pads_a_squeezed_utterance_with_zeros():
    fast = SpecAugment(**{**SPEC_OFF, "time_stretch": [0.5, 0.5]})(ramp(2, axis=1), torch.Generator().manual_seed(0))
    torch.testing.assert_close(fast[0, 0, 0, 0, :50], torch.arange(1, 101, 2, dtype=torch.float32))
    assert (fast[..., 51:] == 0).all()
    slow = SpecAugment(**{**SPEC_OFF, "time_stretch": [2, 2]})(ramp(2, axis=1), torch.Generator().manual_seed(0))
    assert slow[0, 0, 0, 0, -1] == pytest.approx(50.5)  # the second half of the utterance ran past the end


def test_spectral_smoothing_blurs_harmonics_along_the_mel_axis_only_and_keeps_the_envelope():
    features = torch.zeros(16, 1, 1, 40, 30)
    features[..., ::4, :] = 2.0                                     # harmonic-like ridges every 4 bins
    features[..., 20:, :] -= 1.0                                    # and a falling envelope
    out = SpecAugment(**{**SPEC_OFF, "freq_smooth": 3.0})(features, torch.Generator().manual_seed(0))
    ripple = out[..., 8:16, :].std(dim=-2).mean(dim=(1, 2, 3))       # [16]: ridges left in a flat stretch
    assert ripple.min() < 0.3 * features[..., 8:16, :].std(dim=-2).mean() and ripple.max() > ripple.min() * 2
    assert (out[..., :1, :] - out[..., :1, :1]).abs().max() < 1e-6  # frames untouched: the same along time
    torch.testing.assert_close(out[..., 24:36, :].mean(), features[..., 24:36, :].mean(), rtol=0.1, atol=0.05)


def test_spec_reverb_leaves_a_tail_that_falls_by_the_drop_over_its_length():
    features = torch.full((1, 1, 1, 4, 40), -3.0)
    features[..., 5] = 2.0  # one loud frame in silence
    out = SpecAugment(**{**SPEC_OFF, "reverb": 10.0})(features, torch.Generator().manual_seed(0))
    tail = out[0, 0, 0, 0]
    assert (tail[:6] == features[0, 0, 0, 0, :6]).all()  # nothing before the onset moves
    steps = tail[5:12] - tail[6:13]
    assert torch.allclose(steps, steps[0].expand_as(steps)) and 0.3 - 1e-5 <= steps[0] <= 3.0  # one fixed step
    assert tail[-1] == -3.0  # the tail has died into the floor by the end


def test_spec_noise_raises_quiet_cells_and_barely_moves_loud_ones():
    features = torch.zeros(64, 1, 1, 40, 100)
    features[..., :20, :] = -4.0  # quiet lower half, loud (+3) upper half
    features[..., 20:, :] = 3.0
    out = SpecAugment(**{**SPEC_OFF, "noise": 1.0})(features, torch.Generator().manual_seed(0))
    quiet, loud = out[..., :20, :], out[..., 20:, :]
    assert quiet.mean() > -2.0 and (quiet >= -4.0).all()  # the floor is at -2 … -1: it fills the quiet bins
    assert (loud >= 3.0).all() and (loud - 3.0).mean() < 0.05  # a log-domain sum: loud cells stay put


def test_spec_masks_zero_whole_bands_and_spans_of_at_most_the_given_width():
    features = torch.randn(64, 1, 1, 40, 100) + 10  # nothing is 0 before masking
    spec = SpecAugment(**{**SPEC_OFF, "freq_masks": 1, "freq_mask": 8, "time_masks": 1, "time_mask": 10})
    out = spec(features, torch.Generator().manual_seed(0))
    assert out.shape == features.shape and out.dtype == features.dtype
    zero = out[:, 0, 0] == 0                              # [64, M, T]
    bands, spans = zero.all(dim=2), zero.all(dim=1)       # masked bins [64, M], masked frames [64, T]
    torch.testing.assert_close(zero, bands[:, :, None] | spans[:, None, :], rtol=0, atol=0)  # nothing else
    assert bands.sum(1).max() <= 8 and spans.sum(1).max() <= 10
    assert bands.sum(1).float().mean() > 2 and spans.sum(1).float().mean() > 3  # widths are drawn, not fixed
    assert len({tuple(b.nonzero().flatten().tolist()) for b in bands}) > 20  # each spectrogram on its own


@pytest.mark.parametrize("augment, message", [
    ("{image: {kind: blur}}", "data.augment.image.kind: unknown augmentation 'blur'"),
    ("{image: {kind: affine, zoom: 2}}", "unknown config key(s) in data.augment.image: zoom"),
    ("{image: {kind: affine, min_scale: 0.9, max_scale: 0.5}}", "data.augment.image: RandomAffine: need 0 < min_scale"),
    ("{image: {min_scale: 0.5}}", "data.augment.image: expected {kind: affine | scan | points"),
    ("{pointcloud: {kind: points, scale: [2]}}", "data.augment.pointcloud: PointAugment: scale must be [low, high]"),
    ("{pointcloud: {kind: points, thin: 1.5}}", "data.augment.pointcloud: PointAugment: thin is a share in [0, 1]"),
    ("{pointcloud: {kind: points, outline: -0.1}}", "PointAugment: outline is a share in [0, 1]"),
    ("{pointcloud: {kind: points, outline_keep: 0}}", "PointAugment: outline_keep is a share in (0, 1]"),
    ("{audio: {kind: spec, freq_warp: [1.1, 0.9]}}", "data.augment.audio: SpecAugment: freq_warp must be [low, high]"),
    ("{audio: {kind: spec, time_masks: -1}}", "data.augment.audio: SpecAugment: time_masks must be >= 0"),
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
