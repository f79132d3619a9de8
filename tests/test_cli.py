"""The ``omniembed`` command line."""

import json
import subprocess
import sys

import numpy as np

from omniembed.cli import COMMANDS, main


def test_help_lists_every_subcommand():
    result = subprocess.run([sys.executable, "-m", "omniembed.cli", "--help"], capture_output=True, text=True,
                            check=True)
    for name in COMMANDS:
        assert name in result.stdout


def test_create_info_and_embed_round_trip(tmp_path, image_files, capsys):
    assert main(["create", "omni-tiny", str(tmp_path / "m"), "--seed", "1"]) == 0
    assert main(["info", str(tmp_path / "m"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert info["embed_dim"] == 64 and info["anchor"] == "image" and "text" in info["parameters"]

    out = tmp_path / "vectors.npy"
    assert main(["embed", "--model", str(tmp_path / "m"), "--out", str(out), "--text", "a cat",
                 str(image_files["jpg"]), str(image_files["truncated"])]) == 0
    captured = capsys.readouterr()
    assert "skipped" in captured.err and "truncated.jpg" in captured.err
    vectors = np.load(out)
    rows = [json.loads(line) for line in out.with_suffix(".jsonl").read_text().splitlines()]
    assert vectors.shape == (2, 64)
    assert [r["modality"] for r in rows] == ["image", "text"]
    import omniembed

    model = omniembed.load(tmp_path / "m")
    np.testing.assert_allclose(vectors, model.embed([image_files["jpg"], "a cat"]), atol=1e-6)


def test_errors_exit_with_code_2_and_a_message(tmp_path, capsys):
    assert main(["info", "no-such-model"]) == 2
    assert "unknown model 'no-such-model'" in capsys.readouterr().err


def test_models_lists_omni_tiny(capsys):
    assert main(["models"]) == 0
    assert "omni-tiny" in capsys.readouterr().out


def test_embed_walks_folders_as_index_build_does_hidden_skipped_fifo_reported(tmp_path, image_files, capsys):
    import os
    import shutil

    folder = tmp_path / "photos"
    (folder / ".thumbs").mkdir(parents=True)
    shutil.copy(image_files["jpg"], folder / "cat.jpg")
    shutil.copy(image_files["png"], folder / ".hidden.png")
    shutil.copy(image_files["png"], folder / ".thumbs" / "cat.png")
    os.mkfifo(folder / "pipe.jpg")  # reading it would block for ever
    out = tmp_path / "vectors.npy"

    assert main(["embed", "--model", "omni-tiny", "--out", str(out), str(folder)]) == 0

    captured = capsys.readouterr()
    assert f"skipped {folder / 'pipe.jpg'}: not a regular file but a FIFO" in captured.err
    rows = [json.loads(line) for line in out.with_suffix(".jsonl").read_text().splitlines()]
    assert [r["path"] for r in rows] == [str(folder / "cat.jpg")]
    assert np.load(out).shape == (1, 64)
