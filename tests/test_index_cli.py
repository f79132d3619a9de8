"""``omniembed index …`` and ``omniembed search``: tables, JSON lines, result grids, Parquet export, sharded
embedding merged into an index, and the audio spectrogram thumbnail the grids use."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

import omniembed
from omniembed.cli import main
from omniembed.index import Index, ModelMismatchError
from test_index_build import assert_same_contents, contents, write_image, write_tone


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, tiny_model) -> Path:
    return tiny_model.save(tmp_path_factory.mktemp("model") / "omni-tiny")


def data_folder(root: Path) -> list[Path]:
    (root / "photos").mkdir(parents=True)
    (root / "sounds").mkdir()
    return ([write_image(root / "photos" / f"p{i}.png", i) for i in range(3)]
            + [write_tone(root / "sounds" / f"t{f}.wav", f) for f in (440, 880)])


def test_build_info_search_export_add_and_prune_from_the_command_line(tmp_path, model_dir, capsys):
    files = data_folder(tmp_path / "data")
    (tmp_path / "data" / "photos" / "broken.jpg").write_bytes(b"not a jpeg")
    idx = str(tmp_path / "idx")
    assert main(["index", "build", "--model", str(model_dir), "--out", idx, str(tmp_path / "data"),
                 "--label-from-folder"]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("5 added") and "skipped" in captured.err and "broken.jpg" in captured.err

    assert main(["index", "info", idx, "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["count"] == 5 and info["by_modality"] == {"audio": 2, "image": 3} and info["kind"] == "flat"
    assert main(["index", "info", idx]) == 0
    assert "5 files" in capsys.readouterr().out

    # a table: rank, score, modality, path — the same results as the Python API
    assert main(["search", idx, "--text", "a dog barking", "--k", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["rank", "score", "modality", "path"]
    expected = Index.open(idx).search("a dog barking", k=3)
    assert [line.split() for line in lines[1:]] == [[str(h.rank), f"{h.score:.4f}", h.modality, h.path]
                                                    for h in expected]

    # JSON lines, a modality filter and a grid picture
    grid = tmp_path / "grid.png"
    assert main(["search", idx, "--query", str(files[0]), "--json", "--k", "2", "--modality", "image",
                 "--grid", str(grid)]) == 0
    hits = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [h["rank"] for h in hits] == [1, 2] and {h["modality"] for h in hits} == {"image"}
    assert hits[0]["path"] == str(files[0]) and hits[0]["score"] == pytest.approx(1.0, abs=1e-5)
    assert hits[0]["label"] == "photos" and set(hits[0]) >= {"size", "mtime_ns", "hash", "id"}
    width, height = Image.open(grid).size
    assert width > 2 * height  # one row: the query and its two results

    # Parquet: every published row, metadata and vector, with the model fingerprint in the schema metadata
    out = tmp_path / "out.parquet"
    assert main(["index", "export", idx, str(out)]) == 0
    assert "exported 5 rows" in capsys.readouterr().out
    table = pq.read_table(out)
    stored = contents(Index.open(idx))
    assert sorted(table.column("path").to_pylist()) == sorted(stored)
    for path, label, vector in zip(table.column("path").to_pylist(), table.column("label").to_pylist(),
                                   table.column("vector").to_pylist()):
        assert label == Path(path).parent.name
        np.testing.assert_array_equal(np.asarray(vector, np.float32), stored[path][4])
    meta = json.loads(table.schema.metadata[b"omniembed"])
    assert meta["fingerprint"] == info["fingerprint"] and meta["embed_dim"] == 64

    write_image(tmp_path / "data" / "photos" / "p9.png", 9)
    assert main(["index", "add", idx, str(tmp_path / "data")]) == 0
    assert capsys.readouterr().out.startswith("1 added, 0 re-embedded, 5 unchanged")
    files[1].unlink()
    assert main(["index", "prune", idx]) == 0
    assert "1 removed" in capsys.readouterr().out


def test_command_line_errors_name_the_problem(tmp_path, model_dir, capsys):
    assert main(["search", str(tmp_path / "nowhere"), "--text", "x"]) == 2
    assert "no index here" in capsys.readouterr().err
    idx = str(tmp_path / "idx")
    assert main(["index", "build", "--model", str(model_dir), "--out", idx]) == 0
    assert main(["search", idx, "--query", str(tmp_path / "missing.png")]) == 2
    assert "missing.png" in capsys.readouterr().err
    other = omniembed.create("omni-tiny", seed=3).save(tmp_path / "other")
    assert main(["search", idx, "--text", "x", "--model", str(other)]) == 2
    assert "fingerprint" in capsys.readouterr().err
    assert main(["index", "build", "--model", str(model_dir), "--out", str(tmp_path / "idx2"),
                 "--index-option", "hnsw_M=3"]) == 2
    assert "hnsw_M" in capsys.readouterr().err
    assert main(["index", "build", "--model", str(model_dir), "--out", str(tmp_path / "idx3"),
                 "--index-option", "hnsw_rows=int4"]) == 2
    assert "hnsw_rows 'int4' is not one of fp32, fp16" in capsys.readouterr().err


def test_sharded_embedding_parts_merge_into_the_same_index(tmp_path, model_dir, tiny_model, monkeypatch, capsys):
    files = data_folder(tmp_path / "data")
    out = tmp_path / "emb.npy"
    for rank in (0, 1):
        monkeypatch.setenv("RANK", str(rank))
        monkeypatch.setenv("WORLD_SIZE", "2")
        assert main(["embed", "--model", str(model_dir), "--out", str(out), str(tmp_path / "data")]) == 0
    monkeypatch.delenv("RANK")
    monkeypatch.delenv("WORLD_SIZE")
    parts = sorted(tmp_path.glob("emb.part*-of-00002.npy"))
    assert [p.name for p in parts] == ["emb.part00000-of-00002.npy", "emb.part00001-of-00002.npy"]
    ordered = sorted(files)
    for rank, part in enumerate(parts):  # rank r took every 2nd file from the r-th
        rows = [json.loads(line) for line in part.with_suffix(".jsonl").read_text().splitlines()]
        assert [r["path"] for r in rows] == [str(p) for p in ordered[rank::2]]

    idx = tmp_path / "idx"
    assert main(["index", "build", "--model", str(model_dir), "--out", str(idx), "--from-embeddings",
                 *map(str, parts)]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("5 added")
    assert_same_contents(contents(Index.open(idx)), contents(Index.build(tiny_model, tmp_path / "ref", files)))
    report = Index.open(idx).add([tmp_path / "data"])
    assert (report.added, report.unchanged) == (0, 5)

    other = Index.create(tmp_path / "other-idx", omniembed.create("omni-tiny", seed=5))
    with pytest.raises(ModelMismatchError, match="embedded by model"):
        other.add_embeddings(parts)


def test_audio_thumbnail_is_a_spectrogram_with_the_tone_at_its_pitch(tmp_path, tiny_model):
    audio = tiny_model.processor("audio")
    rows = {}
    for freq in (300, 3000):
        picture = audio.thumbnail(write_tone(tmp_path / f"{freq}.wav", freq, seconds=1.0), 64)
        assert picture.shape == (64, 64, 3) and picture.dtype == np.uint8
        brightness = picture.astype(np.float32).sum(axis=2)
        rows[freq] = int(np.argmax(brightness.mean(axis=1)))
        assert (brightness[rows[freq]] > brightness.mean()).all()  # a steady tone: bright at every time
    assert rows[3000] < rows[300]  # higher pitch nearer the top


def test_tune_takes_query_files_texts_and_vectors_and_info_reports_it(tmp_path, model_dir, capsys):
    data_folder(tmp_path / "data")  # 5 files
    idx = str(tmp_path / "idx")
    assert main(["index", "build", "--model", str(model_dir), "--out", idx, "--index-type", "hnsw",
                 "--index-option", "hnsw_rows=fp32", str(tmp_path / "data")]) == 0
    texts = tmp_path / "queries.txt"
    texts.write_text("".join(f"a sound number {i}\n" for i in range(12)) + "\n")
    vectors = tmp_path / "queries.npy"
    np.save(vectors, np.random.default_rng(0).standard_normal((6, 64)).astype(np.float32))
    (tmp_path / "more").mkdir()
    broken = tmp_path / "more" / "broken.wav"
    broken.write_bytes(b"RIFF....")
    capsys.readouterr()
    assert main(["index", "tune", idx, str(tmp_path / "data"), str(tmp_path / "more"), "--texts", str(texts),
                 "--vectors", str(vectors), "--target-recall", "0.95"]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("tuned on 23 queries to recall@10 0.95: recall@10 1.000 / 1.000")
    assert "HNSW M 32 over fp32 rows, efSearch 16" in captured.out and f"skipped {broken}: " in captured.err
    assert main(["index", "info", idx]) == 0
    assert "tuned on   23 sample queries to recall@10 0.95" in capsys.readouterr().out
    assert main(["index", "tune", idx, "--texts", str(texts)]) == 2
    assert "at least 20 queries, got 12" in capsys.readouterr().err
