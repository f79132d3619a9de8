"""Identical training runs are identical bit for bit: no uninitialised memory reaches a batch, even from a file
whose header promises more audio than it holds (issue 17, item 10: one of two identical runs went NaN)."""

from __future__ import annotations

import io
import json
import itertools
import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

from omniembed.datasets.shards import make_shards, samples_from_folder
from omniembed.modalities.audio import AudioConfig, AudioModality
from omniembed.pretrain import trainer
from omniembed.pretrain.config import load_config

RATE = 44100
AUDIO = {"sample_rate": 16000, "n_mels": 32, "n_clips": 3, "clip_seconds": 2.0, "feature_norm": "clip",
         "tower": {"kind": "tdnn", "width": 16, "kernels": [3], "dilations": [1]}}
MODEL = {"embed_dim": 16, "anchor": "text", "modalities": {
    "text": {"trunk": {"width": 32, "depth": 1, "heads": 2, "causal": True}}, "audio": AUDIO}}


# ---- data: field recordings as the issue describes them ------------------------------------------------------
def _ogg_crc(data: bytes) -> int:
    """Ogg's page checksum: CRC-32, polynomial 0x04c11db7, not reflected, initial value 0."""
    crc = 0
    for byte in data:
        crc ^= byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) if crc & 0x80000000 else crc << 1
            crc &= 0xFFFFFFFF
    return crc


def overstate_length(ogg: bytes, extra: int) -> bytes:
    """The Ogg file with its last page's granule position (which libsndfile reads as the length) raised by
    ``extra`` samples — as some recorders write it; reading then returns fewer samples than the header says."""
    last = ogg.rfind(b"OggS")
    page = bytearray(ogg[last:])
    struct.pack_into("<q", page, 6, struct.unpack_from("<q", page, 6)[0] + extra)
    struct.pack_into("<I", page, 22, 0)
    struct.pack_into("<I", page, 22, _ogg_crc(bytes(page)))
    return ogg[:last] + bytes(page)


def recording(i: int, overstated: bool) -> bytes:
    """5 s of 44.1 kHz Ogg Vorbis: a warbling tone in noise, padded with digital silence after 2.5–4 s."""
    rng = np.random.default_rng(i)
    sound = int(RATE * (2.5 + 0.5 * (i % 4)))
    t = np.arange(sound) / RATE
    wave = 0.3 * np.sin(2 * np.pi * (300 + 80 * i) * t * (1 + 0.1 * np.sin(3 * t))) + 0.05 * rng.normal(size=sound)
    buffer = io.BytesIO()
    sf.write(buffer, np.concatenate([wave, np.zeros(5 * RATE - sound)]).astype(np.float32), RATE, format="OGG",
             subtype="VORBIS")
    return overstate_length(buffer.getvalue(), RATE // 2) if overstated else buffer.getvalue()


def recording_shards(folder: Path, n: int = 8) -> Path:
    """Shards of ``n`` recording–caption pairs, every other recording's header overstating its length."""
    clips = folder / "clips"
    clips.mkdir(parents=True)
    for i in range(n):
        (clips / f"rec{i:02d}.ogg").write_bytes(recording(i, overstated=i % 2 == 1))
        (clips / f"rec{i:02d}.txt").write_text(f"a tone at {300 + 80 * i} hertz")
    make_shards(samples_from_folder(clips), folder / "shards", maxcount=3)
    return folder / "shards" / "shards.json"


@pytest.fixture(scope="module")
def recordings(tmp_path_factory) -> Path:
    return recording_shards(tmp_path_factory.mktemp("recordings"))


# ---- poisoned memory: what an allocator may hand out, made visible ---------------------------------------------
@pytest.fixture
def poisoned_memory(monkeypatch):
    """``np.empty`` / ``torch.empty`` (and their ``_like`` forms) return memory filled with a large finite value
    that differs on every call — legal for an uninitialised allocation, so correct code gives the same result,
    while any of it reaching a batch changes the numbers. The loader's worker processes (forked) inherit it."""
    calls = itertools.count(1)

    def numpy_fill(array):
        if array.dtype.kind == "f":
            array.fill(1e30 + 1e24 * next(calls))
        elif array.dtype.kind in "iu":
            array.fill(np.iinfo(array.dtype).max - next(calls) % 1000)
        return array

    def torch_fill(tensor):
        if tensor.is_floating_point():
            tensor.fill_(1e30 + 1e24 * next(calls))
        elif tensor.dtype not in (torch.bool, torch.uint8) and not tensor.is_complex():
            tensor.fill_(torch.iinfo(tensor.dtype).max - next(calls) % 1000)
        return tensor

    for module, name, fill in ((np, "empty", numpy_fill), (np, "empty_like", numpy_fill),
                               (torch, "empty", torch_fill), (torch, "empty_like", torch_fill)):
        original = getattr(module, name)
        monkeypatch.setattr(module, name, lambda *a, _o=original, _f=fill, **k: _f(_o(*a, **k)))


# ---- the tests ---------------------------------------------------------------------------------------------------
def test_audio_whose_header_overstates_its_length_decodes_to_zeros_past_the_real_end(poisoned_memory):
    data = recording(1, overstated=True)
    audio = AudioModality(AudioConfig(**{k: v for k, v in AUDIO.items() if k != "tdnn"}))
    source = audio.load_bytes(data, ".ogg")
    assert source.frames == 5 * RATE + RATE // 2  # the header's claim; the stream ends about 0.5 s earlier
    first, second = (audio.preprocess(audio.load_bytes(data, ".ogg")) for _ in range(2))
    assert torch.equal(first.waves, second.waves)
    assert first.waves.abs().max() < 1.0  # no 1e30 from the poisoned buffers
    # the last clip runs from 3.5 s to 5.5 s: past 5.0 s (sample 24000 of it) the signal is gone and must be 0
    assert first.waves[2, 24100:].abs().max() == 0.0
    assert first.waves[0].abs().max() > 0.1  # the tone
    assert torch.isfinite(audio.collate([first])).all()


@pytest.mark.slow  # two short training runs, each with two loader worker processes
def test_two_identical_runs_give_bit_identical_losses(recordings, tmp_path, poisoned_memory):
    def run(out: Path) -> list[float]:
        experiment = {"model": {"init": str(tmp_path / "model.json"), "frozen": ["text"]},
                      "data": {"datasets": [{"name": "rec", "shards": [str(recordings)], "pairs": [["text", "audio"]]}],
                               "batch_size": 4, "streams": 2, "num_workers": 2, "shuffle_buffer": 3,
                               "decoded_cache_mb": 16},
                      "optim": {"lr": 1e-3, "warmup_steps": 1},
                      "train": {"steps": 3, "checkpoint_every": 3, "log_every": 1, "progress": False,
                                "device": "cpu", "tensorboard": False, "out_dir": str(out)}}
        (tmp_path / "exp.yaml").write_text(yaml.safe_dump(experiment))
        trainer.train(load_config(tmp_path / "exp.yaml"))
        rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
        return [r["loss"] for r in rows if "loss" in r]

    (tmp_path / "model.json").write_text(json.dumps(MODEL))
    first, second = run(tmp_path / "a"), run(tmp_path / "b")
    assert len(first) == 3 and all(np.isfinite(first))
    assert first == second
