"""Decompression bombs: every image path (image, depth, thermal) refuses a header over the pixel limit before
decoding, as an input error that ``on_error="skip"`` and ``omniembed embed`` skip."""

import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from omniembed.cli import main
from omniembed.errors import TooManyPixelsError
from omniembed.modalities import pixel_limit


@pytest.fixture(autouse=True)
def _default_limit(monkeypatch):
    monkeypatch.delenv(pixel_limit.ENV_VAR, raising=False)
    monkeypatch.setattr(pixel_limit, "_limit", pixel_limit._UNSET)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bomb(path: Path, side: int) -> Path:
    """A PNG whose header declares side × side RGB pixels; its data is two rows of zeros (a few hundred bytes)."""
    rows = zlib.compress((b"\0" * (1 + 3 * side)) * 2, 9)
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", rows) + _chunk(b"IEND", b""))
    return path


def bmp_bomb(path: Path, side: int) -> Path:
    """A 24-bit BMP header declaring side × side pixels, with no pixel data."""
    info = struct.pack("<IiiHHIIiiII", 40, side, side, 1, 24, 0, 0, 2835, 2835, 0, 0)
    path.write_bytes(b"BM" + struct.pack("<IHHI", 14 + len(info), 0, 0, 14 + len(info)) + info)
    return path


def tiff_bomb(path: Path, side: int) -> Path:
    """A little-endian 8-bit grey TIFF whose IFD declares side × side pixels, with one byte of strip data."""
    tags = [(256, 4, 1, side), (257, 4, 1, side), (258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 1),
            (273, 4, 1, 8), (277, 3, 1, 1), (278, 4, 1, side), (279, 4, 1, 1)]
    ifd = struct.pack("<H", len(tags)) + b"".join(struct.pack("<HHII", *t) for t in tags) + struct.pack("<I", 0)
    path.write_bytes(b"II*\0" + struct.pack("<I", 9) + b"\0" + ifd)
    return path


def small_images(root: Path, side: int) -> list[Path]:
    """Real side × side files on every image path: RGB image formats, depth and thermal maps."""
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 255, (side, side, 3), dtype=np.uint8)
    paths = []
    for name in ("a.jpg", "a.png", "a.bmp", "a.tiff", "a.gif", "a.webp"):
        Image.fromarray(rgb).save(root / name)
        paths.append(root / name)
    depth = rng.integers(0, 5000, (side, side), dtype=np.uint16)
    for name in ("d.depth.png", "d.depth.tiff"):
        Image.fromarray(depth).save(root / name)
        paths.append(root / name)
    Image.fromarray(rgb[..., 0]).save(root / "t.thermal.jpg")
    return paths + [root / "t.thermal.jpg"]


@pytest.mark.parametrize("make, name", [(png_bomb, "bomb.png"), (bmp_bomb, "bomb.bmp"), (tiff_bomb, "bomb.tiff"),
                                        (png_bomb, "bomb.depth.png"), (tiff_bomb, "bomb.thermal.tiff")])
def test_a_header_bomb_is_a_named_input_error_and_is_skipped(tiny_model, tmp_path, make, name, image_files):
    bomb = make(tmp_path / name, 60000)
    assert bomb.stat().st_size < 2000
    with pytest.raises(TooManyPixelsError, match=rf"{name}: image is 3,600,000,000 pixels, over"):
        tiny_model.embed(bomb)
    rows, failures = tiny_model.embed([image_files["jpg"], bomb], on_error="skip")
    assert rows.shape == (1, tiny_model.embed_dim) and np.isfinite(rows).all()
    assert [(f.index, Path(f.source).name) for f in failures] == [(1, name)]


def test_the_limit_applies_on_every_image_path_and_is_configurable(tiny_model, tmp_path):
    paths = small_images(tmp_path, 40)
    assert np.isfinite(tiny_model.embed(paths)).all()
    pixel_limit.set_max_image_pixels(1599)
    _, failures = tiny_model.embed(paths, on_error="skip")
    assert [Path(f.source).name for f in failures] == [p.name for p in paths]
    assert all("40 × 40 = 1,600 pixels, over the limit of 1,599" in f.reason for f in failures)
    pixel_limit.set_max_image_pixels(1600)
    assert tiny_model.embed(paths).shape == (len(paths), tiny_model.embed_dim)


def test_the_limit_comes_from_the_environment_and_none_removes_it(monkeypatch, tiny_model, tmp_path):
    assert pixel_limit.max_image_pixels() == Image.MAX_IMAGE_PIXELS == pixel_limit.DEFAULT_MAX_PIXELS
    monkeypatch.setenv(pixel_limit.ENV_VAR, "100")
    assert pixel_limit.max_image_pixels() == 100
    with pytest.raises(TooManyPixelsError):
        tiny_model.embed(small_images(tmp_path, 20)[0])
    monkeypatch.setenv(pixel_limit.ENV_VAR, "none")
    assert pixel_limit.max_image_pixels() is None


def test_an_open_pil_image_is_checked_before_it_is_decoded(tiny_model, tmp_path):
    with Image.open(png_bomb(tmp_path / "lazy.png", 9000)) as im:  # 81 M pixels: under PIL's own bomb error
        pixel_limit.set_max_image_pixels(10_000_000)
        with pytest.raises(TooManyPixelsError, match="9000 × 9000"):
            tiny_model.embed(im, modality="image")
        with pytest.raises(TooManyPixelsError, match="9000 × 9000"):
            tiny_model.embed(im, modality="depth")


def test_omniembed_embed_writes_the_good_rows_and_names_the_bomb(tmp_path, tiny_model, image_files, capsys):
    model_dir = tiny_model.save(tmp_path / "m")
    bomb = bmp_bomb(tmp_path / "bomb.bmp", 60000)
    out = tmp_path / "v.npy"
    assert main(["embed", "--model", str(model_dir), "--out", str(out), str(image_files["png"]), str(bomb)]) == 0
    assert "skipped" in capsys.readouterr().err
    assert np.load(out).shape == (1, tiny_model.embed_dim)
    assert [json.loads(line)["path"] for line in out.with_suffix(".jsonl").read_text().splitlines()] == \
        [str(image_files["png"])]
