"""NaN never passes silently: a non-finite embedding is an error for its input (skipped and reported in batch
jobs), the index stores no non-finite row, and a checkpoint with non-finite weights is refused on load."""

import json
import wave

import numpy as np
import pytest
import torch

import omniembed
from omniembed.errors import CheckpointError, NonFiniteEmbeddingError
from omniembed.index import Index
from omniembed.index.errors import NonFiniteVectorError
from omniembed.index.store import NewItem


@pytest.fixture(scope="module")
def nan_audio_model():
    """omni-tiny whose audio head's projection is NaN: every audio input embeds to NaN, the rest are fine."""
    model = omniembed.create("omni-tiny", seed=0)
    with torch.no_grad():
        model.encoder("audio").head.head.proj.weight.fill_(float("nan"))
    return model


def write_wav(path, seconds=1.0, rate=16000):
    t = np.arange(int(seconds * rate)) / rate
    samples = (np.sin(2 * np.pi * 440 * t) * 12000).astype(np.int16)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.tobytes())
    return path


def test_a_nan_embedding_is_an_error_for_that_input_only(nan_audio_model, image_files, tmp_path):
    wav = write_wav(tmp_path / "tone.wav")
    rows, failures = nan_audio_model.embed([image_files["jpg"], wav, "a dog", wav], on_error="skip")
    assert rows.shape == (2, 64) and np.isfinite(rows).all()
    np.testing.assert_allclose(rows, omniembed.create("omni-tiny", seed=0).embed([image_files["jpg"], "a dog"]),
                               atol=1e-6)
    assert [(f.index, f.source) for f in failures] == [(1, str(wav)), (3, str(wav))]
    assert "non-finite (NaN or Inf) embedding" in failures[0].reason
    with pytest.raises(NonFiniteEmbeddingError, match="tone.wav: the model gave a non-finite"):
        nan_audio_model.embed(wav)


def test_index_build_skips_and_reports_nan_rows_and_search_still_answers(nan_audio_model, image_files, tmp_path):
    folder = tmp_path / "media"
    folder.mkdir()
    (folder / "photo.jpg").write_bytes(image_files["jpg"].read_bytes())
    write_wav(folder / "tone.wav")
    index = Index.create(tmp_path / "idx", nan_audio_model)
    report = index.add([folder])
    assert report.added == 1
    assert [(s.path, "non-finite" in s.reason) for s in report.skipped] == [(str(folder / "tone.wav"), True)]
    hits = index.search("a photo", k=5)
    assert [h.path for h in hits] == [str(folder / "photo.jpg")]


def test_the_store_refuses_a_non_finite_row(tiny_model, tmp_path):
    index = Index.create(tmp_path / "idx", tiny_model)
    item = NewItem("/x.jpg", "image", 1, 1, "h", None, np.full(64, np.nan, np.float32))
    with index.store.transaction() as conn, pytest.raises(NonFiniteVectorError, match="/x.jpg: its vector holds"):
        index.store.insert(conn, [item], 1)


def test_merging_a_part_with_a_nan_row_skips_that_row(tiny_model, image_files, tmp_path):
    from omniembed.cli import main

    model_dir = tiny_model.save(tmp_path / "m")
    out = tmp_path / "emb.npy"
    assert main(["embed", "--model", str(model_dir), "--out", str(out), str(image_files["jpg"]),
                 str(image_files["png"])]) == 0
    vectors = np.load(out)
    vectors[1] = np.nan  # a part damaged after it was written
    np.save(out, vectors)
    index = Index.create(tmp_path / "idx", model_dir)
    report = index.add_embeddings([out])
    assert report.added == 1 and index.info()["count"] == 1
    rows = [json.loads(line)["path"] for line in out.with_suffix(".jsonl").read_text().splitlines()]
    assert [(s.path, "holds NaN or Inf" in s.reason) for s in report.skipped] == [(rows[1], True)]


def test_load_refuses_weights_holding_nan_naming_the_tensor(nan_audio_model, tmp_path):
    nan_audio_model.save(tmp_path / "m")
    with pytest.raises(CheckpointError, match=r"model.safetensors: weights hold NaN or Inf values.*"
                                              r"encoders.audio.head.head.proj.weight \(4096 of 4096\)"):
        omniembed.load(tmp_path / "m")
