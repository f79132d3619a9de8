"""The index survives being killed at any point, never shows a half-written generation to a search running during
an add, and lets one writer in at a time."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from omniembed.index import Index, IndexBusyError, IndexCorruptError, VectorIndex
from omniembed.index.updates import writer_lock
from test_index_build import assert_same_contents, contents, write_image, write_tone


def folder(root: Path, n_images: int, n_tones: int = 0, start: int = 0) -> list[Path]:
    root.mkdir(parents=True, exist_ok=True)
    paths = [write_image(root / f"img{start + i:03d}.png", start + i) for i in range(n_images)]
    return paths + [write_tone(root / f"tone{i}.wav", 300 + 150 * i) for i in range(n_tones)]


def committed_rows(db: Path) -> int:
    """Rows a (possibly running) writer has committed so far; 0 before its schema exists."""
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            return conn.execute("SELECT count(*) FROM items").fetchone()[0]
    except sqlite3.Error:
        return 0


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, tiny_model) -> Path:
    return tiny_model.save(tmp_path_factory.mktemp("model") / "omni-tiny")


def test_a_build_killed_mid_way_and_rerun_has_the_same_contents(tmp_path, model_dir, tiny_model):
    root = tmp_path / "data"
    files = folder(root, 40, n_tones=2)  # many batches of one: the kill lands mid-way even on a fast machine
    reference = contents(Index.build(tiny_model, tmp_path / "reference", [root], batch_size=8))
    out = tmp_path / "idx"
    log = tmp_path / "build.log"
    with log.open("w") as stderr:
        proc = subprocess.Popen([sys.executable, "-m", "omniembed.cli", "index", "build", "--model", str(model_dir),
                                 "--out", str(out), "--batch-size", "1", str(root)],
                                stdout=subprocess.DEVNULL, stderr=stderr)
    deadline = time.monotonic() + 120
    while committed_rows(out / "index.sqlite") < 3 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    assert proc.poll() is None, f"the build ended before it could be killed:\n{log.read_text()}"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = committed_rows(out / "index.sqlite")
    assert 3 <= done < len(files), "the build was not killed mid-way"

    index = Index.open(out)
    assert index.info()["generation"] == 0 and index.search("x") == []  # nothing was published
    report = index.add([root], batch_size=8)
    assert (report.unchanged, report.added, report.generation) == (done, len(files) - done, 1)
    assert_same_contents(contents(index), reference)
    assert committed_rows(out / "index.sqlite") == len(files)  # no duplicate rows
    assert len(index.search("x", k=100)) == len(files)


def test_a_crash_while_publishing_keeps_the_last_generation_and_loses_nothing(tmp_path, tiny_model, monkeypatch):
    root = tmp_path / "data"
    first = folder(root, 4)
    index = Index.build(tiny_model, tmp_path / "idx", [root])
    more = folder(root, 3, start=10)

    def crash(self, path):
        raise RuntimeError("simulated crash while writing the faiss file")

    monkeypatch.setattr(VectorIndex, "write", crash)
    with pytest.raises(RuntimeError, match="simulated crash"):
        index.add([root])
    monkeypatch.undo()
    reader = Index.open(tmp_path / "idx", model=tiny_model)
    assert reader.info()["generation"] == 1 and reader.info()["pending"] == {"image": 3}
    assert {h.path for h in reader.search("x", k=100)} == {str(p) for p in first}

    report = reader.add([root])
    assert (report.added, report.unchanged, report.generation) == (0, 7, 2)
    assert {h.path for h in reader.search("x", k=100)} == {str(p) for p in first + more}
    assert_same_contents(contents(reader), contents(Index.build(tiny_model, tmp_path / "reference", [root])))


def test_searches_during_an_add_see_one_whole_generation(tmp_path, tiny_model):
    root = tmp_path / "data"
    old_files = folder(root, 5)
    Index.build(tiny_model, tmp_path / "idx", [root])
    reader = Index.open(tmp_path / "idx", model=tiny_model)
    query = tiny_model.embed([old_files[0]])[0]

    def state() -> frozenset:
        return frozenset((h.path, h.hash) for h in reader.search_vector(query, k=100))

    before = state()
    folder(root, 8, start=20)
    write_image(old_files[1], seed=77)  # changed: its old row stays visible until the new generation
    old_files[2].unlink()
    writer = Index.open(tmp_path / "idx", model=tiny_model)
    errors: list[BaseException] = []

    def add_then_prune():
        try:
            writer.add([root], batch_size=1)
            writer.prune()
        except BaseException as exc:  # noqa: BLE001 — handed to the test thread
            errors.append(exc)

    thread = threading.Thread(target=add_then_prune)
    thread.start()
    seen = []
    while thread.is_alive():
        seen.append(state())
    thread.join()
    assert not errors
    added, pruned = writer.info()["generation"] - 1, state()
    assert added == 2 and len(pruned) == len(before) + 8 - 1
    middle = {s for s in seen if s not in (before, pruned)}
    assert len(middle) <= 1  # at most the generation between the add and the prune
    for s in middle:
        assert len(s) == len(before) + 8 and {p for p, _ in s} >= {p for p, _ in pruned}
    assert len(seen) > 1


def test_one_writer_at_a_time_and_readers_are_not_blocked(tmp_path, tiny_model):
    root = tmp_path / "data"
    folder(root, 2)
    index = Index.build(tiny_model, tmp_path / "idx", [root])
    with writer_lock(tmp_path / "idx"):
        with pytest.raises(IndexBusyError, match="another process"):
            index.add([root])
        assert len(index.search("x")) == 2


def test_temp_files_of_a_killed_writer_and_old_generations_are_cleaned(tmp_path, tiny_model):
    root = tmp_path / "data"
    folder(root, 2)
    index = Index.build(tiny_model, tmp_path / "idx", [root])
    stale = tmp_path / "idx" / ".vectors.000002.faiss.x1y2.tmp"
    stale.write_bytes(b"half a file")
    for i in range(3):
        folder(root, 1, start=50 + i)
        index.add([root])
    assert not stale.exists()
    assert sorted(p.name for p in (tmp_path / "idx").glob("vectors.*.faiss")) == ["vectors.000003.faiss",
                                                                                   "vectors.000004.faiss"]
    assert np.isclose(index.search(root / "img052.png", k=1)[0].score, 1.0, atol=1e-5)


def test_an_unreadable_database_is_named_in_the_error(tmp_path, tiny_model):
    folder(tmp_path / "data", 1)
    Index.build(tiny_model, tmp_path / "idx", [tmp_path / "data"])
    for name in ("index.sqlite", "index.sqlite-wal", "index.sqlite-shm"):
        (tmp_path / "idx" / name).unlink(missing_ok=True)
    (tmp_path / "idx" / "index.sqlite").write_bytes(b"garbage" * 1000)
    with pytest.raises(IndexCorruptError, match="index.sqlite"):
        Index.open(tmp_path / "idx")


def test_a_lost_vector_file_is_rebuilt_from_the_database(tmp_path, tiny_model):
    files = folder(tmp_path / "data", 3)
    index = Index.build(tiny_model, tmp_path / "idx", [tmp_path / "data"])
    (tmp_path / "idx" / "vectors.000001.faiss").unlink()
    with pytest.raises(IndexCorruptError, match="index prune"):
        Index.open(tmp_path / "idx").search_vector(np.ones(64, np.float32))
    report = index.prune()
    assert report.generation == 2 and report.removed == 0
    assert index.search(files[1], k=1)[0].path == str(files[1])
