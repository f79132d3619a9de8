"""Evaluation pictures: they are drawn on private Agg figures, never through pyplot's process-wide state."""

from __future__ import annotations

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest
from PIL import Image

from omniembed.eval.plots import plot_confusions, plot_joint_space, plot_retrievals, text_card


@pytest.fixture
def svg_backend():
    """pyplot on a backend other than Agg, as in a notebook (whose inline backend draws through Agg itself)."""
    previous = matplotlib.get_backend()
    matplotlib.use("svg")
    yield
    matplotlib.use(previous)


def test_plots_leave_the_pyplot_backend_and_figures_alone(tmp_path, tiny_model, svg_backend):
    caption = tmp_path / "caption.txt"
    caption.write_text("a handwritten seven")
    picture = tmp_path / "seven.png"
    Image.fromarray(np.full((20, 20, 3), 200, np.uint8)).save(picture)

    plot_confusions({"image": np.eye(3, dtype=int)}, ["a", "b", "c"], tmp_path / "confusion.png")
    plot_joint_space({"image": np.eye(4, 8)}, {"image": np.arange(4)}, tmp_path / "joint.png")
    plot_retrievals(tiny_model, [(str(picture), "image", [(str(caption), "text", 0.5)])], tmp_path / "grid.png")

    assert matplotlib.get_backend() == "svg"
    assert plt.get_fignums() == []
    for name in ("confusion.png", "joint.png", "grid.png"):
        with Image.open(tmp_path / name) as image:
            assert image.format == "PNG" and min(image.size) > 100


def test_text_card_is_white_with_dark_text(svg_backend):
    card = text_card("the number seven", size=64)
    assert card.shape == (64, 64, 3) and card.dtype == np.uint8
    assert np.median(card) == 255
    assert (card.min(axis=2) < 128).sum() > 20  # the glyphs
    assert matplotlib.get_backend() == "svg"
