"""Bad command lines and damaged files give one named error and exit 2 — never a traceback, never an empty
result with exit 0 (issue 17, items 8 and 9)."""

from __future__ import annotations

from pathlib import Path

import pytest

from omniembed.cli import main


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("model") / "m"
    assert main(["create", "omni-tiny", str(path)]) == 0
    return path


def fails(capsys, argv: list[str]) -> str:
    """Run the command, assert exit 2 and no traceback; return stderr's one error line."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err.strip().splitlines()[-1]


# ---- item 9: missing inputs ------------------------------------------------------------------------------------
def test_embed_on_a_missing_folder_names_it(model_dir, tmp_path, capsys):
    missing = tmp_path / "no-such-folder"
    assert fails(capsys, ["embed", "--model", str(model_dir), "--out", str(tmp_path / "e.npy"), str(missing)]) == (
        f"omniembed embed: error: {missing}: no such file or folder")
    assert not (tmp_path / "e.npy").exists()


def test_embed_on_a_folder_with_nothing_readable_names_it(model_dir, tmp_path, capsys):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.notes").write_text("not an input")
    assert fails(capsys, ["embed", "--model", str(model_dir), "--out", str(tmp_path / "e.npy"),
                          str(tmp_path / "notes")]) == (
        f"omniembed embed: error: {tmp_path / 'notes'}: nothing to embed (no file with a suffix the model reads, "
        "no --text)")


@pytest.mark.parametrize("action", ["build", "add"])
def test_index_build_or_add_on_a_missing_folder_fails_and_creates_no_index(model_dir, tmp_path, capsys, action):
    index = tmp_path / "photos.idx"
    if action == "add":
        assert main(["index", "build", "--model", str(model_dir), "--out", str(index), str(tmp_path / "empty")]) \
            == 2  # (an empty folder that does not exist either)
        (tmp_path / "empty").mkdir()
        assert main(["index", "build", "--model", str(model_dir), "--out", str(index), str(tmp_path / "empty")]) == 0
        capsys.readouterr()
        argv = ["index", "add", str(index), str(tmp_path / "nowhere")]
    else:
        argv = ["index", "build", "--model", str(model_dir), "--out", str(index), str(tmp_path / "nowhere")]
    assert fails(capsys, argv) == f"omniembed index: error: {tmp_path / 'nowhere'}: no such file or folder"
    assert index.exists() == (action == "add")
