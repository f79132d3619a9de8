"""Saving a model never deletes a user's files: non-model folders are refused, a model folder is replaced only
with ``overwrite`` and then only the model's own files change, in one swap."""

import json
import os
import stat

import numpy as np
import pytest
import torch
from conftest import shared_path
from safetensors.torch import load_file

import omniembed
from omniembed.cli import main
from omniembed.errors import OutputExistsError
from omniembed.io import replace_owned_entries
from omniembed.model import owns_entry


@pytest.fixture
def user_files(tmp_path):
    """A folder of the user's: a note, a sub-folder with a file, a symlink."""
    folder = tmp_path / "work"
    (folder / "data").mkdir(parents=True)
    (folder / "notes.txt").write_text("my notes")
    (folder / "data" / "a.csv").write_text("1,2,3\n")
    (folder / "link").symlink_to("notes.txt")
    return folder


def _snapshot(folder):
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() and not p.is_symlink() else None)
            for p in sorted(folder.rglob("*"))}


def test_save_into_a_non_empty_non_model_folder_is_refused_and_changes_nothing(tiny_model, user_files):
    before = _snapshot(user_files)
    for overwrite in (False, True):
        with pytest.raises(OutputExistsError, match=f"{user_files}.*not empty and holds no OmniEmbed model"):
            tiny_model.save(user_files, overwrite=overwrite)
    assert _snapshot(user_files) == before
    assert sorted(p.name for p in user_files.parent.iterdir()) == ["work"]  # no staging folder left behind


def test_save_into_a_file_path_is_refused(tiny_model, tmp_path):
    target = tmp_path / "model"
    target.write_text("not a folder")
    with pytest.raises(OutputExistsError, match="is a file"):
        tiny_model.save(target)
    assert target.read_text() == "not a folder"


def test_save_over_a_model_needs_overwrite(tiny_model, tmp_path):
    target = tiny_model.save(tmp_path / "m")
    weights = (target / "model.safetensors").read_bytes()
    with pytest.raises(OutputExistsError, match="already holds an OmniEmbed model; pass overwrite=True"):
        omniembed.create("omni-tiny", seed=5).save(target)
    assert (target / "model.safetensors").read_bytes() == weights


def test_overwrite_replaces_only_the_models_own_files(tiny_model, tmp_path):
    target = tiny_model.save(tmp_path / "m")
    (target / "training.json").write_text(json.dumps({"pairs": [["audio", "image"]]}))  # the old model's record
    (target / "notes.txt").write_text("keep me")
    (target / "eval").mkdir()
    (target / "eval" / "scores.json").write_text("{}")
    (target / "latest").symlink_to("eval")
    inode = (target / "notes.txt").stat().st_ino
    other = omniembed.create("omni-tiny", seed=5)

    other.save(target, overwrite=True)

    assert sorted(p.name for p in target.iterdir()) == ["README.md", "config.json", "eval", "latest",
                                                        "model.safetensors", "notes.txt"]
    assert (target / "notes.txt").read_text() == "keep me"
    assert (target / "notes.txt").stat().st_ino == inode  # the same file, linked across, not a copy
    assert (target / "eval" / "scores.json").read_text() == "{}"
    assert os.readlink(target / "latest") == "eval"
    assert omniembed.load(target).fingerprint() == other.fingerprint() != tiny_model.fingerprint()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


def test_a_failed_overwrite_keeps_the_old_model_and_the_users_files(tiny_model, tmp_path, monkeypatch):
    target = tiny_model.save(tmp_path / "m")
    (target / "notes.txt").write_text("keep me")
    before = _snapshot(target)

    def disk_full(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("omniembed.model.save_tensors", disk_full)
    with pytest.raises(OSError, match="disk full"):
        omniembed.create("omni-tiny", seed=5).save(target, overwrite=True)
    assert _snapshot(target) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


def test_save_into_an_empty_folder_or_a_new_one_honours_the_umask(tiny_model, tmp_path):
    (tmp_path / "empty").mkdir()
    tiny_model.save(tmp_path / "empty")
    tiny_model.save(tmp_path / "new" / "deeper")
    for folder in (tmp_path / "empty", tmp_path / "new" / "deeper"):
        assert omniembed.load(folder).fingerprint() == tiny_model.fingerprint()
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE((tmp_path / "new" / "deeper").stat().st_mode) == 0o777 & ~umask


def test_a_writer_cannot_stage_a_file_it_does_not_claim(tmp_path):
    with pytest.raises(RuntimeError, match="does not claim"):
        with replace_owned_entries(tmp_path / "m", owns_entry) as stage:
            (stage / "notes.txt").write_text("x")
    assert list(tmp_path.iterdir()) == []


def test_model_files_include_each_modalitys_assets():
    assert all(owns_entry(n) for n in ("config.json", "model.safetensors", "training.json", "tokenizer.json",
                                        "text_tower"))
    assert not any(owns_entry(n) for n in ("notes.txt", "eval", "config.json.bak", "my_tokenizer.json"))


def test_cli_create_refuses_a_users_folder_and_overwrites_a_model_only_when_asked(user_files, tmp_path, capsys):
    assert main(["create", "omni-tiny", str(user_files)]) == 2
    assert f"{user_files}: is not empty" in capsys.readouterr().err
    assert (user_files / "notes.txt").read_text() == "my notes"

    model_dir = tmp_path / "m"
    assert main(["create", "omni-tiny", str(model_dir), "--seed", "1"]) == 0
    (model_dir / "notes.txt").write_text("keep me")
    assert main(["create", "omni-tiny", str(model_dir), "--seed", "2"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(["create", "omni-tiny", str(model_dir), "--seed", "2", "--overwrite"]) == 0
    assert (model_dir / "notes.txt").read_text() == "keep me"
    expected = omniembed.create("omni-tiny", seed=2).embed("a cat")
    np.testing.assert_array_equal(omniembed.load(model_dir).embed("a cat"), expected)


def test_cli_convert_refuses_a_users_folder_and_overwrites_a_model_only_when_asked(user_files, tmp_path, capsys):
    fixture = shared_path("fixtures", "imagebind-tiny")
    checkpoint = tmp_path / "imagebind_tiny.pth"
    torch.save({"model": load_file(str(fixture / "model.safetensors"))}, checkpoint)
    argv = ["convert", "imagebind", str(checkpoint), "--config", str(fixture / "config.json")]
    assert main(argv[:3] + [str(user_files)] + argv[3:]) == 2
    assert f"{user_files}: is not empty" in capsys.readouterr().err
    assert _snapshot(user_files)["notes.txt"] == b"my notes"

    out = omniembed.create("omni-tiny", seed=0).save(tmp_path / "ib")
    (out / "notes.txt").write_text("keep me")
    assert main(argv[:3] + [str(out)] + argv[3:]) == 2
    assert main(argv[:3] + [str(out)] + argv[3:] + ["--overwrite"]) == 0
    assert (out / "notes.txt").read_text() == "keep me"
    assert omniembed.load(out).config.name == "imagebind"


def test_exchange_swaps_two_folders_in_one_step(tmp_path):
    from omniembed.io import _exchange

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "x").write_text("x")
    (tmp_path / "b" / "y").write_text("y")
    assert _exchange(tmp_path / "a", tmp_path / "b")  # Linux with renameat2: the atomic path is the one taken
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["y"]
    assert [p.name for p in (tmp_path / "b").iterdir()] == ["x"]


def test_overwrite_without_an_atomic_exchange_still_keeps_the_users_files(tiny_model, tmp_path, monkeypatch):
    monkeypatch.setattr("omniembed.io._exchange", lambda a, b: False)  # another OS or file system: two renames
    target = tiny_model.save(tmp_path / "m")
    (target / "notes.txt").write_text("keep me")
    other = omniembed.create("omni-tiny", seed=5)
    other.save(target, overwrite=True)
    assert (target / "notes.txt").read_text() == "keep me"
    assert omniembed.load(target).fingerprint() == other.fingerprint()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


def test_overwrite_keeps_a_readme_a_person_wrote(tiny_model, tmp_path):
    target = tiny_model.save(tmp_path / "m")
    assert "model card written by omniembed" in (target / "README.md").read_text()
    (target / "README.md").write_text("# my notes on this model\n")

    omniembed.create("omni-tiny", seed=5).save(target, overwrite=True)

    assert (target / "README.md").read_text() == "# my notes on this model\n"
