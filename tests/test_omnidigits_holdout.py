"""OmniDigits sources to hold out: digits from fonts, point-cloud lifting recipes, and builds that leave whole
sources out of train while tagging every file with its source."""

from __future__ import annotations

import json
import tarfile

import numpy as np
import pytest
from PIL import Image, ImageDraw

from omniembed.datasets import build_omnidigits, load_manifest, load_split
from omniembed.datasets import omnidigits_fonts
from omniembed.datasets.omnidigits_fonts import FontFile, font_images, list_fonts
from omniembed.datasets.omnidigits_lifts import LIFT_RECIPES, lift_digit
from omniembed.datasets.omnidigits_sources import MissingToolError
from omniembed.errors import ConfigError


def two_font_families() -> list[FontFile]:
    try:
        fonts = list_fonts()
    except MissingToolError:
        pytest.skip("fontconfig (fc-list) is not installed")
    families = sorted({f.family for f in fonts})
    if len(families) < 2:
        pytest.skip("fewer than two font families installed (e.g. apt-get install fonts-dejavu fonts-liberation)")
    # one face per family keeps the test quick
    return [next(f for f in fonts if f.family == family) for family in families[:2]]


def test_font_digits_are_framed_as_mnist_and_split_by_family():
    fonts = two_font_families()
    pool = font_images(fonts)
    assert pool.pixels.shape == (2 * 10 * omnidigits_fonts.RENDERS_PER_GLYPH, 28, 28)
    np.testing.assert_array_equal(np.bincount(pool.labels), [2 * omnidigits_fonts.RENDERS_PER_GLYPH] * 10)
    for glyph in pool.pixels:
        ys, xs = np.nonzero(glyph)
        assert max(np.ptp(ys), np.ptp(xs)) + 1 <= 20  # the ink fits MNIST's 20 × 20 box
        mass = glyph.astype(float)
        centre = [(mass.sum(axis=1) @ np.arange(28)) / mass.sum(), (mass.sum(axis=0) @ np.arange(28)) / mass.sum()]
        np.testing.assert_allclose(centre, 13.5, atol=1.5)
    families = {split: {pool.ids[i].split(":")[1].split("/")[0] for i in pool.splits[split]}
                for split in ("train", "test")}
    assert families == {"train": {fonts[0].family}, "test": {fonts[1].family}}
    # a digit's renders differ from one another, and the pool is the same on every call
    assert not np.array_equal(pool.pixels[0], pool.pixels[1])
    np.testing.assert_array_equal(font_images(fonts).pixels, pool.pixels)


def test_fonts_without_two_families_say_how_to_install_some():
    with pytest.raises(MissingToolError, match="apt-get install"):
        font_images([FontFile("/nowhere/A.ttf", "A", "Regular")])


def test_font_list_takes_fonts_with_digits_and_latin_letters_even_without_english_punctuation(tmp_path, monkeypatch):
    # a stand-in fc-list: records its query, lists a handwriting font fontconfig would not call English, a picture
    # font and a face in a format PIL cannot draw
    fake = tmp_path / "fc-list"
    fake.write_text("#!/bin/sh\n"
                    f"echo \"$1\" > {tmp_path / 'query'}\n"
                    "echo '/f/Humor-Sans.ttf: Humor Sans:style=Regular'\n"
                    "echo '/f/dkg.ttf: DkgHandwriting:style=Regular,Normal'\n"
                    "echo '/f/D050000L.otf: D050000L:style=Regular'\n"
                    "echo '/f/n021003l.pfb: Nimbus Roman:style=Regular'\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert list_fonts() == [FontFile("/f/dkg.ttf", "DkgHandwriting", "Regular"),
                            FontFile("/f/Humor-Sans.ttf", "Humor Sans", "Regular")]
    query = (tmp_path / "query").read_text().strip()
    assert "charset=30-39 41-5a 61-7a" in query and "lang" not in query


def ring_digit() -> np.ndarray:
    """A filled ring, like a zero: uint8 [28, 28]."""
    image = Image.new("L", (28, 28), 0)
    ImageDraw.Draw(image).ellipse((6, 4, 21, 23), outline=255, width=4)
    return np.asarray(image)


def thickness(points: np.ndarray) -> float:
    return float(np.sqrt(np.linalg.eigvalsh(np.cov(points.T))[0]))


def test_lifting_recipes_differ_in_depth_density_aspect_and_where_points_lie():
    digit = ring_digit()
    clouds = {name: lift_digit(digit, np.random.default_rng(0), recipe) for name, recipe in LIFT_RECIPES.items()}
    assert {name: len(c) for name, c in clouds.items()} == {
        "lift-slab": 1536, "lift-deep": 1536, "lift-sparse": 384, "lift-stretched": 1536, "lift-outline": 1536}
    assert thickness(clouds["lift-deep"]) > 2.5 * thickness(clouds["lift-slab"])
    assert all(np.isfinite(c).all() and c.dtype == np.float32 for c in clouds.values())
    # outline points: within the ring's wall (4 px = 0.3 units) they hug its two edges, so their distance from the
    # ring's centre line spreads wider than that of points filling the wall
    plane = {}
    for name in ("lift-slab", "lift-outline"):
        centred = clouds[name] - clouds[name].mean(axis=0)
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        xy = centred @ vt[:2].T
        plane[name] = np.abs(np.hypot(*xy.T) - np.median(np.hypot(*xy.T)))
    assert np.median(plane["lift-outline"]) > 1.2 * np.median(plane["lift-slab"])
    # a stretched lift changes the width-to-height ratio from draw to draw
    widths = [np.ptp(lift_digit(digit, np.random.default_rng(s), LIFT_RECIPES["lift-stretched"])[:, 0])
              for s in range(8)]
    assert max(widths) / min(widths) > 1.3


@pytest.fixture(scope="module")
def held_out_build(tmp_path_factory):
    """Images and clouds from every source that needs no data root (scikit-learn digits, two font families),
    fonts and one recipe left out of train."""
    fonts = two_font_families()
    patch = pytest.MonkeyPatch()
    patch.setattr(omnidigits_fonts, "list_fonts", lambda: fonts)
    out = tmp_path_factory.mktemp("holdout") / "digits"
    try:
        build_omnidigits(out, n_train=40, n_test=40, source="all", modalities=("image", "text", "pointcloud"),
                         workers=1, exclude=["fonts", "lift-deep"])
    finally:
        patch.undo()
    return out


def test_a_left_out_source_is_in_no_train_file_and_in_test(held_out_build):
    manifest = load_manifest(held_out_build)
    assert manifest.excluded == ["fonts", "lift-deep"]
    assert manifest.source_names["image"] == ["sklearn-digits", "fonts"]
    assert manifest.source_names["pointcloud"] == list(LIFT_RECIPES)
    train, test = (load_split(held_out_build, split) for split in ("train", "test"))
    assert {r.origins["image"] for r in train} == {"sklearn-digits"}
    assert not {r.origins["pointcloud"] for r in train} & {"lift-deep"}
    assert not any(s.startswith("fonts:") for r in train for s in r.sources.values())
    assert {r.origins["image"] for r in test} == {"sklearn-digits", "fonts"}
    assert "lift-deep" in {r.origins["pointcloud"] for r in test}
    # the image's source is the one its id names
    for r in test:
        assert r.sources["image"].startswith("fonts:") == (r.origins["image"] == "fonts")


def test_every_sample_carries_its_sources_in_its_folder_and_its_shard(held_out_build):
    record = load_split(held_out_build, "test")[0]
    tagged = json.loads((held_out_build / "test" / f"{record.key}.src").read_text())
    assert tagged == record.origins and set(tagged) == {"image", "pointcloud"}
    index = json.loads((held_out_build / load_manifest(held_out_build).shards["test"]).read_text())
    shard = held_out_build / "shards" / "test" / index["shardlist"][0]["url"]
    with tarfile.open(shard) as tar:
        members = {m.name: m for m in tar.getmembers()}
        key = next(name.split(".")[0] for name in members if name.endswith(".src"))
        assert json.loads(tar.extractfile(members[f"{key}.src"]).read()) == \
            json.loads((held_out_build / "test" / f"{key}.src").read_text())


def test_leaving_out_an_unknown_or_absent_source_or_the_only_one_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="'mnsit'|mnsit is not a source"):
        build_omnidigits(tmp_path / "a", n_train=10, n_test=10, source="offline", modalities=("image",),
                         exclude=["mnsit"])
    with pytest.raises(ConfigError, match="cannot leave out fonts"):
        build_omnidigits(tmp_path / "b", n_train=10, n_test=10, source="offline", modalities=("image",),
                         exclude=["fonts"])
    with pytest.raises(ConfigError, match="leaves no image source"):
        build_omnidigits(tmp_path / "c", n_train=10, n_test=10, source="offline", modalities=("image",),
                         exclude=["sklearn-digits"])
    assert not any(tmp_path.iterdir())  # nothing half-built is left behind
