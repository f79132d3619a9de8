"""What ``embed()`` takes an item for: folders expand to their files, ``Text`` is always text, strings are judged
by their form (omniembed/inputs.py)."""

import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import omniembed
from omniembed import Text
from omniembed.errors import EmptyInputError, MissingInputError
from omniembed.inputs import expand_folders


@pytest.fixture
def photos(tmp_path):
    """photos/: two images at two depths, a text file, a hidden image and a file no modality reads."""
    root = tmp_path / "photos"
    (root / "sub").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for path in (root / "b.png", root / "sub" / "a.jpg", root / ".hidden.jpg"):
        Image.fromarray(rng.integers(0, 255, (30, 40, 3), dtype=np.uint8)).save(path)
    (root / "notes.txt").write_text("a note about birds")
    (root / "data.csv").write_text("1,2\n")
    return root


def test_a_folder_string_or_path_expands_in_place_to_its_files(tiny_model, photos):
    files = [photos / "b.png", photos / "notes.txt", photos / "sub" / "a.jpg"]
    expected = tiny_model.embed(["a cat", *files, "a dog"])
    for folder in (f"{photos}/", str(photos), photos):
        rows = tiny_model.embed(["a cat", folder, "a dog"])
        np.testing.assert_array_equal(rows, expected)
    assert expand_folders([str(photos)], tiny_model.modality_of) == files
    assert expand_folders([photos], tiny_model.modality_of, modality="image") == [files[0], files[2]]


def test_a_txt_file_named_by_a_string_is_read_not_embedded_as_its_name(tiny_model, photos):
    np.testing.assert_array_equal(tiny_model.embed(str(photos / "notes.txt")),
                                  tiny_model.embed("a note about birds"))


def test_text_wrapper_keeps_a_path_like_string_as_text(tiny_model, photos):
    with pytest.raises(MissingInputError, match="my cat.jpg"):
        tiny_model.embed("my cat.jpg")
    as_text = tiny_model.embed([Text("my cat.jpg"), Text(str(photos))])
    np.testing.assert_array_equal(as_text, tiny_model.embed(["my cat.jpg", str(photos)], modality="text"))
    assert not np.array_equal(as_text[1], tiny_model.embed(photos / "b.png")[0])


def test_a_bare_word_that_names_a_folder_stays_text_with_a_warning(tiny_model, photos, monkeypatch):
    monkeypatch.chdir(photos.parent)
    with pytest.warns(UserWarning, match=r"'photos' is embedded as text, but it also names a folder"):
        word = tiny_model.embed("photos")
    np.testing.assert_array_equal(word, tiny_model.embed(Text("photos")))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert tiny_model.embed("photos/").shape == (3, tiny_model.embed_dim)
        tiny_model.embed(Text("photos"))


def test_missing_and_empty_folders_are_named_and_skipped_alone(tiny_model, photos, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(MissingInputError, match="nowhere/: folder not found"):
        tiny_model.embed(f"{tmp_path}/nowhere/")
    with pytest.raises(EmptyInputError, match="empty: folder holds no file that the model reads"):
        tiny_model.embed(tmp_path / "empty")
    rows, failures = tiny_model.embed(["a cat", tmp_path / "empty", photos / "b.png"], on_error="skip")
    assert rows.shape == (2, tiny_model.embed_dim)
    assert [(f.index, Path(f.source).name) for f in failures] == [(1, "empty")]


def test_text_is_exported_and_refuses_non_strings():
    assert omniembed.Text("x").text == "x"
    with pytest.raises(TypeError, match="Text wraps a str"):
        Text(Path("x.jpg"))
