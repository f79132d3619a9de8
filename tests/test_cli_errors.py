"""Bad command lines and damaged files give one named error and exit 2 — never a traceback, never an empty
result with exit 0 (issue 17, items 8 and 9)."""

from __future__ import annotations

import json
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


# ---- item 8: configs -------------------------------------------------------------------------------------------
def _edit_config(model_dir: Path, target: Path, edit) -> Path:
    import shutil

    shutil.copytree(model_dir, target)
    data = json.loads((target / "config.json").read_text())
    (target / "config.json").write_text(json.dumps(edit(data)))
    return target


def test_model_config_holding_a_json_array_is_a_named_error(model_dir, tmp_path, capsys):
    broken = _edit_config(model_dir, tmp_path / "m", lambda data: [1, 2])
    assert fails(capsys, ["info", str(broken)]) == (
        f"omniembed info: error: {broken / 'config.json'}: expected a JSON object, got a JSON list")


def test_negative_image_size_is_refused_on_load_naming_the_file_and_key(model_dir, tmp_path, capsys):
    def negative(data):
        data["modalities"]["image"]["image_size"] = -64
        return data

    broken = _edit_config(model_dir, tmp_path / "m", negative)
    assert fails(capsys, ["info", str(broken)]) == (
        f"omniembed info: error: {broken / 'config.json'}: modalities.image.image_size must be positive, got -64")


@pytest.mark.parametrize("key, value, message", [
    ("modalities.image.patch_size", 512, "modalities.image.patch_size (512) is larger than image_size (224)"),
    ("modalities.text.trunk.heads", 0, "modalities.text.trunk.heads must be positive, got 0"),
    ("modalities.image.trunk.drop_path", 1.5, "modalities.image.trunk.drop_path must be in [0, 1], got 1.5"),
])
def test_model_config_ranges_are_checked_when_the_config_is_read(key, value, message):
    from omniembed.config import replace_path
    from omniembed.model_config import ModelConfig
    from omniembed.errors import ConfigError

    data = ModelConfig.from_dict({"anchor": "image", "modalities": {"image": {}, "text": {}}}).to_dict()
    node = data
    *parents, leaf = key.split(".")
    for part in parents:
        node = node[part]
    node[leaf] = value
    with pytest.raises(ConfigError) as caught:
        ModelConfig.from_dict(data)
    assert str(caught.value) == message
    with pytest.raises(ConfigError, match=r"^heads must be positive, got 0$"):  # replace_path checks too
        replace_path(ModelConfig.from_dict(data | {"modalities": {"text": {}}, "anchor": "text"})
                     .modalities["text"].trunk, "heads", 0)


def test_info_on_an_image_file_says_it_is_not_a_model(tmp_path, capsys):
    from PIL import Image

    Image.new("RGB", (8, 8)).save(tmp_path / "x.jpg")
    assert fails(capsys, ["info", str(tmp_path / "x.jpg")]) == (
        f"omniembed info: error: {tmp_path / 'x.jpg'}: not a model config (a binary file, not JSON); a model is a "
        "checkpoint directory, a config .json or a registered model name")


@pytest.mark.parametrize("override, message", [
    ("data.batch_size=-4", "data.batch_size must be positive, got -4"),
    ("optim.lr=-1", "optim.lr must be positive, got -1.0"),
    ("optim.betas=[0.9, 1.5]", "optim.betas must be in [0, 1), got [0.9, 1.5]"),
    ("optim.grad_clip=0", "optim.grad_clip must be positive, got 0.0"),
    ("data.num_workers=-1", "data.num_workers must be 0 or more, got -1"),
    ("train.steps=0", "train.steps must be positive, got 0"),
    ("data.datasets.0.weight=-2", "data.datasets[0].weight must be positive, got -2.0"),
])
def test_train_with_an_out_of_range_setting_exits_2_naming_the_key(tmp_path, capsys, override, message):
    from omniembed.pretrain import trainer

    recipe = Path(__file__).resolve().parents[1] / "pretrain" / "recipes" / "image_text_tiny.yaml"
    assert trainer.main([str(recipe), override, f"train.out_dir={tmp_path}"]) == 2
    assert capsys.readouterr().err.strip() == f"omniembed train: error: {recipe}: {message}"


# ---- item 8: devices -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("device, message", [
    ("banana", "device 'banana' is not a device name (expected cpu, cuda, cuda:N, mps)"),
    ("cuda", "device 'cuda': CUDA is not available on this machine (no GPU or no driver); use cpu"),
])
def test_unusable_device_is_a_named_error_before_any_output(model_dir, tmp_path, capsys, monkeypatch, device,
                                                             message):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # the same on a GPU machine
    for argv in (["embed", "--model", str(model_dir), "--device", device, "--out", str(tmp_path / "e.npy"),
                  "--text", "a cat"],
                 ["index", "build", "--model", str(model_dir), "--device", device, "--out", str(tmp_path / "i")]):
        assert fails(capsys, argv).endswith(f"error: {message}")
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_train_device_is_checked_before_the_run_starts(tmp_path, capsys, monkeypatch):
    import torch

    from omniembed.pretrain import trainer

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    recipe = Path(__file__).resolve().parents[1] / "pretrain" / "recipes" / "image_text_tiny.yaml"
    assert trainer.main([str(recipe), "train.device=cuda:1", f"train.out_dir={tmp_path / 'run'}"]) == 2
    assert capsys.readouterr().err.strip() == ("omniembed train: error: train.device 'cuda:1': CUDA is not available "
                                               "on this machine (no GPU or no driver); use cpu")
    assert not (tmp_path / "run").exists()


# ---- item 8: outputs that cannot be written ----------------------------------------------------------------------
@pytest.fixture
def photo(tmp_path) -> Path:
    from PIL import Image

    Image.new("RGB", (16, 16), (200, 30, 30)).save(tmp_path / "photo.jpg")
    return tmp_path / "photo.jpg"


def test_unwritable_outputs_name_the_path_and_what_stands_in_the_way(model_dir, tmp_path, photo, capsys):
    blocked = photo / "sub"  # a file stands where a folder is needed: unwritable even for root
    (tmp_path / "taken.npy").mkdir()
    cases = [
        (["embed", "--model", str(model_dir), "--out", str(blocked / "e.npy"), str(photo)],
         f"omniembed embed: error: cannot write {blocked / 'e.npy'}: {photo} is a file, not a folder"),
        (["embed", "--model", str(model_dir), "--out", str(tmp_path / "taken.npy"), str(photo)],
         f"omniembed embed: error: cannot write {tmp_path / 'taken.npy'}: Is a directory"),
        (["create", "omni-tiny", str(blocked / "m")],
         f"omniembed create: error: cannot write {blocked / 'm'}: {photo} is a file, not a folder"),
    ]
    for argv, message in cases:
        assert fails(capsys, argv) == message
    index = tmp_path / "photos.idx"
    assert main(["index", "build", "--model", str(model_dir), "--out", str(index), str(photo)]) == 0
    capsys.readouterr()
    assert fails(capsys, ["index", "export", str(index), str(blocked / "rows.parquet")]) == (
        f"omniembed index: error: cannot write {blocked / 'rows.parquet'}: {photo} is a file, not a folder")
    assert fails(capsys, ["search", str(index), "--text", "red", "--grid", str(blocked / "grid.png")]) == (
        f"omniembed search: error: cannot write {blocked / 'grid.png'}: {photo} is a file, not a folder")
    assert main(["search", str(index), "--text", "red", "--grid", str(tmp_path / "grid.svg")]) == 0
    assert (tmp_path / "grid.svg").read_text().lstrip().startswith("<?xml")  # the suffix picks the format
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize("target", [".", ".."])
def test_create_into_dot_is_a_named_error_and_touches_nothing(tmp_path, capsys, monkeypatch, target):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("mine")
    assert fails(capsys, ["create", "omni-tiny", target]) == (
        f"omniembed create: error: {target}: is not empty and holds no OmniEmbed model (no config.json of format "
        "omniembed/…); refusing to write into it — choose a new or empty folder")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


# ---- item 8: a damaged index database ----------------------------------------------------------------------------
DAMAGE = {
    "short vector blob": ("UPDATE items SET vector = substr(vector, 1, 20) WHERE id = 1",
                          "row 1: stored vector is 20 bytes, expected 256 (64 float32); rebuild the index"),
    "bad settings JSON": ("UPDATE settings SET value = '{broken' WHERE key = 'embed_dim'",
                          "setting 'embed_dim' is not valid JSON (Expecting property name enclosed in double quotes: "
                          "line 1 column 2 (char 1)); rebuild the index"),
    "dropped table": ("DROP TABLE items", "the database is damaged (no such table: items); rebuild the index"),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_damaged_index_database_is_a_named_error(model_dir, tmp_path, photo, capsys, damage):
    import sqlite3

    index = tmp_path / "photos.idx"
    assert main(["index", "build", "--model", str(model_dir), "--out", str(index), str(photo)]) == 0
    statement, reason = DAMAGE[damage]
    with sqlite3.connect(index / "index.sqlite") as conn:
        conn.execute(statement)
    capsys.readouterr()
    database = index / "index.sqlite"
    commands = [["index", "export", str(index), str(tmp_path / "rows.parquet")]]
    if damage != "short vector blob":  # vectors are read back only to export or rebuild; the rest reads settings
        commands += [["index", "info", str(index)], ["search", str(index), "--text", "red"],
                     ["index", "add", str(index), str(photo)]]
    for argv in commands:
        assert fails(capsys, argv) == f"omniembed {argv[0]}: error: {database}: {reason}"
    assert not (tmp_path / "rows.parquet").exists()
