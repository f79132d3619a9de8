"""Only regular files are read: a FIFO named like an image or a link to /dev/zero is reported, never opened
(reading either blocks or never ends)."""

import os

import numpy as np
import pytest
from deadline import deadline
from PIL import Image

from omniembed.index import Index
from omniembed.walk import discover, file_hash


@pytest.fixture
def folder(tmp_path):
    """A real image, a FIFO named x.jpg, a link z.png → /dev/zero and a link to the real image."""
    root = tmp_path / "photos"
    root.mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 50, 3), dtype=np.uint8)).save(root / "a.jpg")
    os.mkfifo(root / "x.jpg")
    (root / "z.png").symlink_to("/dev/zero")
    (root / "b.jpg").symlink_to(root / "a.jpg")
    return root


def test_discover_lists_fifos_and_device_links_apart_from_files(folder, tiny_model):
    found = discover([folder, folder / "x.jpg"], tiny_model.modality_of)
    assert [f.path.name for f in found.files] == ["a.jpg", "b.jpg"]
    assert sorted(p.name for p in found.special) == ["x.jpg", "x.jpg", "z.png"]
    assert found.missing == [] and found.ignored == []


def test_index_build_over_a_fifo_and_dev_zero_reports_them_and_finishes(folder, tiny_model, tmp_path):
    with deadline(20, "index build over a FIFO and a link to /dev/zero"):
        index = Index.build(tiny_model, tmp_path / "idx", [folder])
        report = index.add([folder])  # a second pass plans (hashes) again
    assert index.info()["count"] == 2
    skipped = {os.path.basename(s.path): s.reason for s in report.skipped}
    assert skipped == {"x.jpg": "not a regular file but a FIFO: not read",
                       "z.png": "not a regular file but a character device: not read"}


def test_embed_refuses_a_fifo_without_opening_it(folder, tiny_model):
    with deadline(30, "embed of a FIFO"):
        rows, failures = tiny_model.embed([folder / "a.jpg", folder / "x.jpg", folder / "z.png"], on_error="skip")
    assert rows.shape == (1, tiny_model.embed_dim)
    assert [(f.index, os.path.basename(f.source)) for f in failures] == [(1, "x.jpg"), (2, "z.png")]
    assert all("not a regular file" in f.reason for f in failures)


def test_hashing_a_fifo_raises_instead_of_blocking(folder):
    with deadline(10, "hashing a FIFO"), pytest.raises(OSError, match="not a regular file but a FIFO"):
        file_hash(folder / "x.jpg")
    with deadline(10, "hashing /dev/zero"), pytest.raises(OSError, match="character device"):
        file_hash(folder / "z.png")
