"""The retrieval index on real mixed folders: build, metadata, search, incremental add, prune, labels, corrupt
files, model mismatch, kind growth. Media are made on the fly (images, wav, mp4, txt, and ply when a point-cloud
modality is registered)."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

import omniembed
from omniembed.errors import ConfigError, InputError, MissingInputError
from omniembed.index import Index, IndexCorruptError, IndexSpec, ModelMismatchError
from omniembed.registry import list_modalities

RATE = 16000


# ---- media made on the fly (imported by the other test_index_* files) --------------------------------------------
def write_image(path: Path, seed: int) -> Path:
    """A 48 × 40 picture: a coloured block on a noisy background, different for every seed."""
    rng = np.random.default_rng(seed)
    pixels = (rng.random((40, 48, 3)) * 80).astype(np.uint8)
    y, x = rng.integers(0, 20, size=2)
    pixels[y:y + 20, x:x + 24] = rng.integers(0, 256, size=3, dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def write_tone(path: Path, freq: float, seconds: float = 0.5) -> Path:
    t = np.arange(int(seconds * RATE)) / RATE
    sf.write(path, (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), RATE, subtype="PCM_16")
    return path


def write_ply(path: Path, seed: int, n: int = 256) -> Path:
    """An ASCII PLY point cloud (x, y, z floats)."""
    points = np.random.default_rng(seed).standard_normal((n, 3)).astype(np.float32)
    header = f"ply\nformat ascii 1.0\nelement vertex {n}\nproperty float x\nproperty float y\nproperty float z\nend_header\n"
    path.write_text(header + "".join(f"{a:.5f} {b:.5f} {c:.5f}\n" for a, b, c in points))
    return path


def pointcloud_suffix() -> str | None:
    """'.ply' when a registered modality reads it (the point-cloud modality is optional)."""
    if "pointcloud" not in list_modalities():
        return None
    from omniembed.registry import get_modality

    return ".ply" if ".ply" in get_modality("pointcloud").suffixes else None


def make_media(root: Path, n_images: int = 5, n_tones: int = 3, video: bool = True) -> dict[str, list[Path]]:
    """photos/ (png + jpg), sounds/ (wav), clips/ (mp4), notes/ (txt), clouds/ (ply), plus bad/ with a truncated
    jpeg, a garbage wav and a garbage mp4, and a .qqq file no modality reads."""
    from test_video import write_video

    for sub in ("photos", "sounds", "clips", "notes", "bad", "clouds"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    files: dict[str, list[Path]] = {
        "image": [write_image(root / "photos" / f"p{i}{'.jpg' if i % 2 else '.png'}", i) for i in range(n_images)],
        "audio": [write_tone(root / "sounds" / f"tone{f}.wav", f) for f in (330, 660, 1320)[:n_tones]],
        "text": [root / "notes" / "caption.txt"],
    }
    files["text"][0].write_text("a red square on a grey background")
    if video:
        files["video"] = [write_video(root / "clips" / "grey.mp4", seconds=1.0, fps=8, audio=False)]
    suffix = pointcloud_suffix()
    if suffix:
        files["pointcloud"] = [write_ply(root / "clouds" / f"cloud{i}{suffix}", i) for i in range(2)]
    good_jpeg = (root / "photos" / "p1.jpg").read_bytes()
    (root / "bad" / "truncated.jpg").write_bytes(good_jpeg[: len(good_jpeg) // 3])
    (root / "bad" / "noise.wav").write_bytes(b"RIFF not really a wave file" * 10)
    (root / "bad" / "broken.mp4").write_bytes(b"not a video" * 50)
    (root / "bad" / "readme.qqq").write_text("no modality reads this")
    files["bad"] = sorted(p for p in (root / "bad").iterdir() if p.suffix != ".qqq")
    return files


def all_good(files: dict[str, list[Path]]) -> list[Path]:
    return sorted(p for kind, paths in files.items() if kind != "bad" for p in paths)


def contents(index: Index) -> dict[str, tuple]:
    """path → (modality, size, hash, label, vector) of every published row."""
    with index.store.snapshot() as conn:
        rows = conn.execute("SELECT path, modality, size, hash, label, vector FROM items "
                            "WHERE gen_removed IS NULL ORDER BY path").fetchall()
    return {r[0]: (r[1], r[2], r[3], r[4], np.frombuffer(r[5], np.float32)) for r in rows}


def assert_same_contents(a: dict[str, tuple], b: dict[str, tuple]) -> None:
    assert sorted(a) == sorted(b)
    for path in a:
        assert a[path][:4] == b[path][:4], path
        np.testing.assert_allclose(a[path][4], b[path][4], atol=1e-5)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, tiny_model) -> Path:
    return tiny_model.save(tmp_path_factory.mktemp("model") / "omni-tiny")


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> tuple[Path, dict[str, list[Path]]]:
    root = tmp_path_factory.mktemp("media")
    return root, make_media(root)


@pytest.fixture(scope="module")
def built(tmp_path_factory, model_dir, media):
    root, files = media
    out = tmp_path_factory.mktemp("idx") / "idx"
    index = Index.create(out, model_dir)
    report = index.add([root])
    return index, report, files


# ---- build and metadata ------------------------------------------------------------------------------------------
def test_build_stores_every_readable_file_with_its_metadata(built):
    index, report, files = built
    stored = contents(index)
    assert sorted(stored) == [str(p) for p in all_good(files)]
    for modality, paths in files.items():
        for p in paths:
            if modality == "bad":
                continue
            row = stored[str(p)]
            assert row[0] == modality
            assert row[1] == p.stat().st_size
            assert row[2] == hashlib.sha256(p.read_bytes()).hexdigest()
    assert report.added == len(stored) and report.generation == 1
    info = index.info()
    assert info["count"] == len(stored) and info["kind"] == "flat"
    assert info["by_modality"] == {m: len(p) for m, p in files.items() if m != "bad"}


def test_corrupt_files_are_reported_and_skipped_and_unknown_suffixes_ignored(built):
    _, report, files = built
    assert sorted(s.path for s in report.skipped) == [str(p) for p in files["bad"]]
    assert all(s.reason for s in report.skipped)
    assert [Path(p).name for p in report.ignored] == ["readme.qqq"]


def test_stored_vectors_are_the_models_embeddings(built, tiny_model):
    index, _, files = built
    stored = contents(index)
    some = [files["image"][1], files["audio"][0], files["text"][0]]
    np.testing.assert_allclose(np.stack([stored[str(p)][4] for p in some]), tiny_model.embed(some), atol=1e-5)


def test_text_search_ranks_by_the_models_cosine(built, tiny_model):
    index, _, files = built
    stored = contents(index)
    paths = sorted(stored)
    vectors = np.stack([stored[p][4] for p in paths])
    query = tiny_model.embed(["a red square"], modality="text")[0]
    expected = np.argsort(-(vectors @ query))[:5]
    hits = index.search("a red square", k=5)
    assert [h.path for h in hits] == [paths[i] for i in expected]
    np.testing.assert_allclose([h.score for h in hits], (vectors @ query)[expected], atol=1e-5)
    assert [h.rank for h in hits] == [1, 2, 3, 4, 5]


def test_a_file_query_finds_itself_first(built):
    index, _, files = built
    for modality in ("image", "video"):
        query = files[modality][0]
        top = index.search(query, k=3)[0]
        assert top.path == str(query) and top.modality == modality and top.score == pytest.approx(1.0, abs=1e-5)


def test_modality_filter_returns_only_those_modalities(built):
    index, _, files = built
    hits = index.search("a tone", k=10, modalities=["audio", "video"])
    assert {h.modality for h in hits} == {"audio", "video"}
    assert len(hits) == len(files["audio"]) + len(files["video"])
    with pytest.raises(ConfigError, match="unknown modality"):
        index.search("x", modalities=["smell"])


def test_vector_queries_are_normalised_and_checked(built, tiny_model):
    index, _, files = built
    vector = tiny_model.embed([files["image"][2]])[0]
    assert index.search(3.0 * vector, k=1)[0].path == str(files["image"][2])
    with pytest.raises(InputError, match="64 values"):
        index.search(np.ones(10, np.float32))


@pytest.mark.skipif(pointcloud_suffix() is None, reason="no point-cloud modality registered")
def test_point_clouds_are_indexed_and_searchable(built):
    index, _, files = built
    top = index.search(files["pointcloud"][0], k=1)[0]
    assert top.modality == "pointcloud" and top.path == str(files["pointcloud"][0])


# ---- incremental add and prune -----------------------------------------------------------------------------------
@pytest.fixture
def own_index(tmp_path, tiny_model):
    """A small folder (images, audio, text) and its index, to modify."""
    root = tmp_path / "data"
    files = make_media(root, n_images=2, n_tones=2, video=False)
    shutil.rmtree(root / "bad")
    index = Index.build(tiny_model, tmp_path / "idx", [root])
    return root, files, index


def test_add_skips_unchanged_files_and_reembeds_changed_ones(own_index, tiny_model):
    root, files, index = own_index
    before = {h.path: h.id for h in index.search("x", k=100)}
    touched, changed = files["image"][0], files["image"][1]
    os.utime(touched, ns=(touched.stat().st_atime_ns, touched.stat().st_mtime_ns + 10**9))  # same content
    write_image(changed, seed=99)
    new = write_image(root / "photos" / "new.png", seed=100)

    report = index.add([root])
    assert (report.added, report.updated, report.removed) == (1, 1, 0)
    assert report.unchanged == len(before) - 1 and report.generation == 2
    after = {h.path: h for h in index.search("x", k=100)}
    assert len(after) == len(before) + 1
    assert after[str(touched)].id == before[str(touched)]  # kept its row and vector
    assert after[str(touched)].mtime_ns == touched.stat().st_mtime_ns
    assert after[str(changed)].id != before[str(changed)]
    assert after[str(changed)].hash == hashlib.sha256(changed.read_bytes()).hexdigest()
    top = index.search(changed, k=1)[0]
    assert top.path == str(changed) and top.score == pytest.approx(1.0, abs=1e-5)
    assert str(new) in after

    again = index.add([root])
    assert (again.added, again.updated, again.unchanged, again.generation) == (0, 0, len(after), 2)


def test_rehash_finds_a_change_that_kept_size_and_mtime(own_index):
    root, files, index = own_index
    path = files["text"][0]
    stat = path.stat()
    path.write_text("A RED SQUARE ON A GREY BACKGROUND")  # same length
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert index.add([root]).updated == 0
    assert index.add([root], rehash=True).updated == 1


def test_deleted_files_stay_until_prune(own_index):
    root, files, index = own_index
    gone = [files["image"][0], files["audio"][1]]
    for p in gone:
        p.unlink()
    count = index.info()["count"]
    assert index.add([root]).removed == 0 and index.info()["count"] == count
    report = index.prune()
    assert report.removed == 2 and index.info()["count"] == count - 2
    assert not {str(p) for p in gone} & {h.path for h in index.search("x", k=100)}
    assert index.prune().removed == 0


def test_a_changed_file_that_no_longer_decodes_leaves_no_stale_row(own_index):
    root, files, index = own_index
    broken = files["audio"][0]
    broken.write_bytes(b"RIFF broken")
    report = index.add([root])
    assert [s.path for s in report.skipped] == [str(broken)] and report.removed == 1
    assert str(broken) not in {h.path for h in index.search("x", k=100)}


def test_labels_from_folders_update_without_reembedding(own_index):
    root, files, index = own_index
    report = index.add([root], label=lambda p: p.parent.name)
    assert report.added == 0 and report.updated == 0
    labels = {h.path: h.label for h in index.search("x", k=100)}
    assert labels[str(files["image"][0])] == "photos" and labels[str(files["audio"][0])] == "sounds"


# ---- the model guard ---------------------------------------------------------------------------------------------
def test_a_model_with_other_weights_is_refused(built, model_dir, tmp_path):
    index, _, _ = built
    other = omniembed.create("omni-tiny", seed=1)
    with pytest.raises(ModelMismatchError, match="fingerprint"):
        Index.open(index.directory, model=other)
    with pytest.raises(ModelMismatchError):
        Index.create(index.directory, other)
    # the checkpoint the index was built from is later overwritten with other weights
    moved = tmp_path / "model"
    shutil.copytree(model_dir, moved)
    copy = tmp_path / "idx"
    Index.build(moved, copy, [])
    other.save(moved, overwrite=True)
    with pytest.raises(ModelMismatchError, match=str(moved)):
        Index.open(copy).search("a query")


def test_an_index_built_from_a_model_object_needs_the_model_to_query(tmp_path, tiny_model, media):
    root, files = media
    index = Index.build(tiny_model, tmp_path / "idx", [root / "sounds"])
    assert len(index.search("x", k=10)) == len(files["audio"])
    with pytest.raises(ConfigError, match="pass model="):
        Index.open(tmp_path / "idx").search("x")
    assert len(Index.open(tmp_path / "idx", model=tiny_model).search("x", k=10)) == len(files["audio"])


# ---- the vector structure follows the size -----------------------------------------------------------------------
def test_growing_past_the_flat_limit_switches_to_hnsw_and_prune_rebuilds_it(tmp_path, model_dir):
    root = tmp_path / "photos"
    root.mkdir()
    first = [write_image(root / f"a{i}.png", i) for i in range(4)]
    spec = IndexSpec(flat_max_cells=5 * 64)
    index = Index.build(model_dir, tmp_path / "idx", [root], spec=spec)
    assert index.info()["kind"] == "flat"
    more = [write_image(root / f"b{i}.png", 10 + i) for i in range(4)]
    report = index.add([root])
    assert index.info()["kind"] == "hnsw" and report.description.startswith("hnsw: 8 × 64")
    for p in first + more:
        assert index.search(p, k=1)[0].path == str(p)
    more[0].unlink()
    assert index.prune().description.startswith("hnsw: 7 × 64")
    assert str(more[0]) not in {h.path for h in index.search("x", k=10)}


def test_a_build_that_fell_back_to_exact_search_is_extended_not_rebuilt_on_the_next_add(tmp_path, model_dir,
                                                                                          monkeypatch):
    from omniembed.index import index as index_module
    from omniembed.index import vectors

    builds = []

    def exact_instead(vecs, ids, spec, dim, progress=None, held_out=True):  # build() when the graph is not worth it
        builds.append(len(vecs))
        return vectors._flat(vecs, ids, dim, progress, reason="exact: 0.10 ms per query against hnsw's 1.00 ms")

    monkeypatch.setattr(index_module, "build", exact_instead)
    root = tmp_path / "photos"
    root.mkdir()
    for i in range(6):
        write_image(root / f"a{i}.png", i)
    index = Index.build(model_dir, tmp_path / "idx", [root], spec=IndexSpec(flat_max_cells=5 * 64))
    assert builds == [6] and index.info()["kind"] == "flat"
    write_image(root / "b.png", 50)
    index.add([root])  # still the planned kind (hnsw) and below 2× the built count: appended, no rebuild
    assert builds == [6] and index.info()["count"] == 7
    assert index.info()["description"] == "flat: 7 × 64 (exact: 0.10 ms per query against hnsw's 1.00 ms)"
    assert index.search(root / "b.png", k=1)[0].path == str(root / "b.png")
    for i in range(6):
        write_image(root / f"c{i}.png", 60 + i)
    index.add([root])  # 13 rows ≥ 2 × 6: time to try the graph again
    assert builds == [6, 13]


# ---- tuning on sample queries ----------------------------------------------------------------------------------
QUERIES = [f"query number {i}: a picture of something {i % 7}" for i in range(24)]


def test_sample_queries_tune_the_graph_and_tune_it_again_after_a_rebuild(tmp_path, model_dir, monkeypatch):
    from omniembed.index import index as index_module

    calls = []
    real = index_module.tune_to_queries
    monkeypatch.setattr(index_module, "tune_to_queries", lambda *a, **k: calls.append(len(a[3])) or real(*a, **k))
    root = tmp_path / "photos"
    root.mkdir()
    photos = [write_image(root / f"a{i}.png", i) for i in range(8)]
    index = Index.build(model_dir, tmp_path / "idx", [root], spec=IndexSpec(kind="hnsw"))
    broken = root / "broken.png"
    broken.write_bytes(b"not a png")
    report = index.tune([*QUERIES, broken], target_recall=0.9)
    assert calls == [24] and report.queries == 24 and report.target == 0.9
    assert report.breadth == 16 and report.tune_recall == report.verify_recall == 1.0  # 8 rows: all found
    assert [s.split(": ")[0] for s in report.skipped] == [str(broken)]
    assert report.generation == 2 and "efSearch 16" in report.description
    assert index.info()["tune_queries"] == 24 and index.info()["tune_target"] == 0.9
    assert (tmp_path / "idx" / "tune_queries.npy").is_file()
    photos[0].unlink()
    assert index.prune().description.startswith("hnsw: 7 × 64")  # a graph cannot remove: rebuilt, tuned again
    assert calls == [24, 24]
    assert index.search(photos[1], k=1)[0].path == str(photos[1])
    reopened = Index.open(tmp_path / "idx")
    assert reopened.info()["tune_queries"] == 24


def test_sample_queries_bring_back_a_graph_its_build_abandoned_on_held_out_rows(tmp_path, model_dir, monkeypatch):
    from omniembed.index import index as index_module
    from omniembed.index import vectors

    real_build, held = vectors.build, []

    def judged_on_held_out_rows(vecs, ids, spec, dim, progress=None, held_out=True):
        held.append(held_out)  # held-out rows of near-duplicates: no breadth reaches the target on them
        if held_out:
            return vectors._flat(vecs, ids, dim, progress,
                                 reason="exact: hnsw reached recall@10 0.500 / 0.500 on the halves of held-out rows")
        return real_build(vecs, ids, spec, dim, progress, held_out=False)

    monkeypatch.setattr(index_module, "build", judged_on_held_out_rows)
    monkeypatch.setattr(vectors, "exact_is_faster", lambda *a: (False, 0.1, 1.0))  # recall decides here
    root = tmp_path / "photos"
    root.mkdir()
    photos = [write_image(root / f"a{i}.png", i) for i in range(8)]
    index = Index.build(model_dir, tmp_path / "idx", [root], spec=IndexSpec(flat_max_cells=5 * 64))
    assert held == [True] and index.info()["kind"] == "flat"
    report = index.tune(QUERIES, target_recall=0.9)
    assert held == [True, False] and index.info()["kind"] == "hnsw"
    assert report.breadth == 16 and "efSearch 16" in report.description
    assert index.search(photos[3], k=1)[0].path == str(photos[3])
    for i in range(8):
        write_image(root / f"b{i}.png", 20 + i)
    index.add([root])  # 16 rows ≥ 2 × 8: rebuilt, and tuned on the stored queries instead of held-out rows
    assert held == [True, False, False] and index.info()["kind"] == "hnsw"


def test_a_damaged_tuning_file_is_named_by_info_and_by_a_rebuild(tmp_path, model_dir):
    root = tmp_path / "photos"
    root.mkdir()
    for i in range(8):
        write_image(root / f"a{i}.png", i)
    index = Index.build(model_dir, tmp_path / "idx", [root], spec=IndexSpec(kind="hnsw"))
    index.tune(QUERIES, target_recall=0.9)
    stored = tmp_path / "idx" / "tune_queries.npy"
    stored.write_bytes(stored.read_bytes()[:-100])  # cut short: the header promises more rows than follow
    with pytest.raises(IndexCorruptError, match="tune_queries.npy: cannot read the tuning queries"):
        index.info()
    np.save(stored, np.zeros((24, 3), np.float32))
    with pytest.raises(IndexCorruptError, match=r"tune_queries.npy: holds rows of shape \(24, 3\), not \[Q, 64\]"):
        Index.open(tmp_path / "idx").info()


def test_tuning_an_exact_index_changes_nothing_and_bad_requests_are_refused(tmp_path, model_dir):
    root = tmp_path / "photos"
    root.mkdir()
    empty = Index.create(tmp_path / "empty", model_dir)
    with pytest.raises(ConfigError, match="the index is empty"):
        empty.tune(QUERIES)
    write_image(root / "a.png", 1)
    index = Index.build(model_dir, tmp_path / "idx", [root])
    with pytest.raises(ConfigError, match="at least 20 queries, got 3"):
        index.tune(QUERIES[:3])
    with pytest.raises(ConfigError, match=r"target recall must lie in \(0, 1\]"):
        index.tune(QUERIES, target_recall=1.5)
    with pytest.raises(MissingInputError, match="gone.png"):
        index.tune([*QUERIES, tmp_path / "gone.png"])
    report = index.tune(QUERIES)
    assert report.breadth is None and "exact search" in report.summary()
    assert index.search(root / "a.png", k=1)[0].path == str(root / "a.png")
