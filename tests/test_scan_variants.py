"""tools/scan_variants.py: a labelled digit folder re-scanned as other collections scan (16 × 16 grey fitted,
stretched binary, inverted, low-res) plus clouds from another lifter, each variant a folder omniembed eval reads."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from omniembed.errors import MissingInputError

TOOL = Path(__file__).resolve().parents[1] / "tools" / "scan_variants.py"


@pytest.fixture(scope="module")
def tool():
    spec = importlib.util.spec_from_file_location("scan_variants", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_scan(folder: Path, stem: str, pixels: np.ndarray, label: int) -> None:
    Image.fromarray(pixels).save(folder / f"{stem}.png")
    (folder / f"{stem}.cls").write_text(str(label))


def bar_scan() -> np.ndarray:
    """28 × 28, MNIST-like: a bright bar 4 wide and 16 tall, off-centre."""
    pixels = np.zeros((28, 28), np.uint8)
    pixels[6:22, 8:12] = 255
    return pixels


def test_variants_fit_stretch_binarise_and_invert_the_ink_box(tool, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    write_scan(src, "00000", bar_scan(), 1)
    counts = tool.rescan_folder(src, tmp_path / "out")
    assert counts == {"low16": 1, "usps16": 1, "semeion16": 1, "usps16_inv": 1, "clouds16": 1}
    read = {v: np.asarray(Image.open(tmp_path / "out" / v / "00000.png")) for v in counts if v != "clouds16"}
    assert all(image.shape == (16, 16) for image in read.values())
    rows, cols = np.nonzero(read["usps16"] > 127)
    assert rows.min() == 0 and rows.max() == 15 and cols.max() - cols.min() + 1 == 4  # 4:16 kept, full height
    assert set(np.unique(read["semeion16"])) == {255}                                 # stretched: all ink
    np.testing.assert_array_equal(read["usps16_inv"], 255 - read["usps16"])
    assert (tmp_path / "out" / "semeion16" / "00000.cls").read_text() == "1"


def test_clouds_come_from_the_fitted_scan_with_the_given_slab_depth(tool, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    write_scan(src, "00000", bar_scan(), 1)
    tool.rescan_folder(src, tmp_path / "out", depth=0.6)
    raw = (tmp_path / "out" / "clouds16" / "00000.ply").read_bytes()
    points = np.frombuffer(raw[raw.index(b"end_header\n") + 11:], "<f4").reshape(-1, 3)
    assert points.shape == (1536, 3)
    assert np.ptp(points[:, 1]) > 1.9                  # the fitted bar spans the frame's height
    # a 0.25-wide bar in a 0.6-deep slab, turned ≤ 30° about y: the radius in x–z stays within half the diagonal
    assert np.hypot(points[:, 0] - points[:, 0].mean(), points[:, 2]).max() <= np.hypot(0.25, 0.6) / 2 + 0.13


def test_blank_scans_are_skipped_and_the_rest_written(tool, tmp_path, capsys):
    src = tmp_path / "src"
    src.mkdir()
    write_scan(src, "00000", np.zeros((28, 28), np.uint8), 0)
    write_scan(src, "00001", bar_scan(), 1)
    counts = tool.rescan_folder(src, tmp_path / "out")
    assert counts["usps16"] == 1 and not (tmp_path / "out" / "usps16" / "00000.png").exists()
    assert "00000.png" in capsys.readouterr().out
    with pytest.raises(MissingInputError, match="no STEM.png"):
        tool.rescan_folder(tmp_path / "out" / "clouds16", tmp_path / "again")
