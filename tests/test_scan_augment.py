"""The scanned-digit augmentation (``data.augment.image: {kind: scan}``): reframing to the ink box, slant and
elastic distortion, stroke width, low resolution, blur, binarisation, polarity and noise, each pinned on its own
with the others off."""

from __future__ import annotations

import pytest
import torch

from omniembed.errors import ConfigError
from omniembed.modalities.scan_augment import (ScanAugment, change_stroke, fill_frame, gaussian_blur, ink_box,
                                               resample_low)
from omniembed.pretrain.augment import build_transform

OFF = dict(min_scale=1.0, max_scale=1.0, translate=0.0, degrees=0.0, reframe=0.0, stroke=0.0, low_res=0.0,
           blur=0.0, binarise=0.0, invert=0.0, noise=0.0)
"""Every change off: the transform is the identity (up to resampling rounding)."""


def bar_images(n: int = 4, size: int = 32) -> torch.Tensor:
    """[n, 3, size, size] normalised scans: background −1, a bright vertical bar 4 px wide, 12 px tall, left of
    centre (columns 6–9, rows 10–21), like a small '1' in the corner of MNIST's frame."""
    images = torch.full((n, 3, size, size), -1.0)
    images[..., 10:22, 6:10] = 1.0
    return images


def bright(images: torch.Tensor) -> torch.Tensor:
    """[n]: how many pixels of each image are above the middle of its range."""
    return (images[:, 0] > 0).float().sum(dim=(1, 2))


def test_with_every_change_off_the_scan_is_unchanged():
    images = bar_images()
    out = ScanAugment(**OFF)(images, torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, images, atol=1e-5, rtol=0)


def test_ink_box_is_the_bar_in_grid_coordinates():
    u = (bar_images(1) + 1) / 2
    centre, half = ink_box(u)
    # columns 6–9 of 32: edges at 2·6/32 − 1 and 2·10/32 − 1; rows 10–21: edges at 2·10/32 − 1 and 2·22/32 − 1
    torch.testing.assert_close(centre, torch.tensor([[(12 / 32 + 20 / 32) / 2 - 1, (20 / 32 + 44 / 32) / 2 - 1]]))
    torch.testing.assert_close(half, torch.tensor([[4 / 32, 12 / 32]]))


def test_reframing_stretches_the_ink_box_to_fill_the_frame_at_the_drawn_aspect():
    u = (bar_images(2) + 1) / 2
    # aspect ×3: the 4 × 12 bar becomes square; ×1: it keeps 1:3 and its height fills the frame
    theta = fill_frame(u, torch.tensor([3.0, 1.0]), torch.tensor([1.0, 1.0]))
    out = torch.nn.functional.grid_sample(u, torch.nn.functional.affine_grid(theta, list(u.shape), align_corners=False),
                                          align_corners=False)
    assert bright(out * 2 - 1)[0] > 0.9 * 32 * 32                        # the square fills the frame
    rows, cols = torch.nonzero(out[1, 0] > 0.5, as_tuple=True)
    assert rows.min() <= 1 and rows.max() >= 30                          # full height …
    assert abs((cols.max() - cols.min() + 1) - 32 / 3) <= 2               # … a third as wide, centred
    assert abs((cols.max() + cols.min()) / 2 - 15.5) <= 1


def test_scan_augment_reframes_the_chosen_share_of_images():
    images = bar_images(200)
    out = ScanAugment(**{**OFF, "reframe": 0.5, "aspect": [1.0, 1.0]})(images, torch.Generator().manual_seed(0))
    grown = bright(out) > 2 * bright(images)
    assert 0.35 < grown.float().mean() < 0.65


def test_stroke_change_thickens_by_dilation_and_thins_by_half_an_erosion():
    u = (bar_images(3) + 1) / 2
    out = change_stroke(u, torch.tensor([1.0, 0.0, -1.0]))
    # dilation by 3 × 3: a 6 × 14 bar; the erosion's 2 × 10 core stays 1, its 1-px rim drops to a half
    assert (out[0, 0] > 0.5).sum() == 6 * 14
    torch.testing.assert_close(out[1], u[1])
    assert (out[2, 0] > 0.99).sum() == 2 * 10 and (out[2, 0] > 0.4).sum() == 4 * 12


def test_low_resolution_resampling_touches_only_the_chosen_images_and_blurs_edges():
    u = (bar_images(2) + 1) / 2
    out = resample_low(u, torch.tensor([True, False]), torch.tensor([8, 8]))
    torch.testing.assert_close(out[1], u[1])
    grey = ((out[0, 0] > 0.05) & (out[0, 0] < 0.95)).sum()
    assert grey > 20                                                      # 8 px a side: soft edges all round


def test_blur_keeps_the_mean_away_from_the_border_and_zero_sigma_is_the_identity():
    u = (bar_images(2) + 1) / 2
    out = gaussian_blur(u, torch.tensor([1.0, 0.0]))
    torch.testing.assert_close(out[1], u[1])
    torch.testing.assert_close(out[0].sum(), u[0].sum(), rtol=1e-4, atol=1e-3)  # the bar is far from the edges
    assert out[0, 0, 15, 5] > 0.1 and out[0, 0, 15, 7] < 1                  # ink spread past its edge


def test_binarised_and_inverted_scans_keep_the_range_and_flip_the_ink():
    images = bar_images(2)
    images[..., 10:22, 10] = 0.0                                          # a grey edge column
    out = ScanAugment(**{**OFF, "binarise": 1.0, "invert": 1.0})(images, torch.Generator().manual_seed(0))
    assert set(out.unique().tolist()) == {-1.0, 1.0}
    assert (out[:, 0, 10:22, 6:10] == -1).all() and (out[:, 0, :5] == 1).all()  # dark ink, light background


def test_noise_stays_in_the_range_and_differs_per_image():
    images = bar_images(4)
    out = ScanAugment(**{**OFF, "noise": 0.2})(images, torch.Generator().manual_seed(0))
    assert out.min() >= -1 - 1e-6 and out.max() <= 1 + 1e-6
    spread = (out - images).std(dim=(1, 2, 3))
    assert spread.max() > 0.02 and len(set(spread.round(decimals=4).tolist())) == 4


def test_scan_augment_is_a_data_augment_kind_and_refuses_bad_settings():
    transform = build_transform("image", {"kind": "scan", "invert": 0.5})
    assert isinstance(transform, ScanAugment) and transform.invert == 0.5
    with pytest.raises(ConfigError, match="data.augment.image.*invert is a probability"):
        build_transform("image", {"kind": "scan", "invert": 1.5})
    with pytest.raises(ConfigError, match="fill is a share of the frame"):
        build_transform("image", {"kind": "scan", "fill": [0.8, 1.2]})


def test_stretched_reframing_fills_the_frame_on_both_axes_whatever_the_aspect():
    u = (bar_images(2) + 1) / 2                                           # 4 × 12 bars: aspect 1:3
    theta = fill_frame(u, torch.tensor([1.0, 1.0]), torch.tensor([1.0, 1.0]), torch.tensor([True, False]))
    out = torch.nn.functional.grid_sample(u, torch.nn.functional.affine_grid(theta, list(u.shape), align_corners=False),
                                          align_corners=False)
    assert bright(out[:1] * 2 - 1) > 0.9 * 32 * 32                        # stretched: the bar fills the frame
    cols = torch.nonzero(out[1, 0] > 0.5, as_tuple=True)[1]
    assert abs((cols.max() - cols.min() + 1) - 32 / 3) <= 2               # not stretched: keeps its 1:3


def test_slant_shears_the_bar_and_keeps_its_ink():
    images = bar_images(64)
    out = ScanAugment(**{**OFF, "shear": 30.0})(images, torch.Generator().manual_seed(0))
    # a sheared vertical bar: its top and bottom rows' ink sit at different columns; the ink area is kept
    cols = torch.arange(32.0)
    ink = (out[:, 0] + 1) / 2                                            # [64, 32, 32] in [0, 1]
    top, bottom = (ink[:, r].mul(cols).sum(-1) / ink[:, r].sum(-1).clamp(min=1e-6) for r in (11, 20))
    lean = (top - bottom).abs()
    assert lean.max() > 2.5 and lean.min() < lean.max() / 4               # up to tan 30° · 9 rows, drawn per image
    torch.testing.assert_close(ink.sum(dim=(1, 2)), ((images[:, 0] + 1) / 2).sum(dim=(1, 2)), rtol=0.08, atol=0)


def test_elastic_distortion_bends_the_bar_smoothly_by_at_most_its_size():
    images = bar_images(32)
    out = ScanAugment(**{**OFF, "elastic": 0.05})(images, torch.Generator().manual_seed(0))
    moved = (out - images).abs().amax(dim=(1, 2, 3))
    assert (moved > 0.1).all()                                           # every image is bent
    # no offset moves ink by more than 0.05 · 2 grid units · 16 px = 1.6 px: the ink stays within 2 px of the bar
    ink = torch.nonzero(out[:, 0] > -0.5, as_tuple=True)
    assert ink[1].min() >= 10 - 2 and ink[1].max() <= 21 + 2 and ink[2].min() >= 6 - 2 and ink[2].max() <= 9 + 2
    with pytest.raises(ConfigError, match="elastic_cells must be >= 1"):
        build_transform("image", {"kind": "scan", "elastic_cells": 0})
    with pytest.raises(ConfigError, match="shear is an angle"):
        build_transform("image", {"kind": "scan", "shear": 95})
