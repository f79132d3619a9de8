"""The vector half of the index: kind by size, exact flat scores, HNSW over PCA-reduced rows with exact re-ranking,
IVF-PQ, recall tuning, removal, and files that keep their settings."""

from __future__ import annotations

import re
import time

import faiss
import numpy as np
import pytest

from omniembed.errors import ConfigError
from omniembed.index.errors import IndexCorruptError
from omniembed.index import exact, vectors
from omniembed.index.exact import exact_search
from omniembed.index.tuning import held_truth, reaches, recall_at, tune_breadth
from omniembed.index.vectors import IndexSpec, VectorIndex, build, choose_kind, reduced_dim


def low_dim(n: int, dim: int = 128, rank: int = 8, seed: int = 0, offset: float = 0.0) -> np.ndarray:
    """Unit rows of intrinsic dimension ``rank``: unit(z @ W + 0.02·noise (+ a shared offset)), [n, dim]."""
    g = np.random.default_rng(seed)
    w = np.random.default_rng(99).standard_normal((rank, dim)).astype(np.float32)
    x = g.standard_normal((n, rank), dtype=np.float32) @ w + 0.02 * g.standard_normal((n, dim), dtype=np.float32)
    x += offset * np.random.default_rng(7).standard_normal(dim).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def exact_top(queries: np.ndarray, rows: np.ndarray, ids: np.ndarray, k: int = 10) -> np.ndarray:
    _, found = faiss.knn(queries, rows, k, metric=faiss.METRIC_INNER_PRODUCT)
    return ids[found]


def test_kind_follows_size_unless_forced():
    spec = IndexSpec(flat_max_cells=1000 * 64, ivfpq_min=50_000)
    assert choose_kind(1000, 64, spec) == "flat"
    assert choose_kind(1001, 64, spec) == "hnsw"
    assert choose_kind(50_000, 64, spec) == "ivfpq"
    assert choose_kind(10, 64, IndexSpec(kind="hnsw")) == "hnsw"
    # the default: exact up to ~4k rows of 512-d, then a graph (kept only where it beats the scan) up to 5M
    assert choose_kind(3_900, 512, IndexSpec()) == "flat" and choose_kind(19_000, 512, IndexSpec()) == "hnsw"
    assert choose_kind(1_000_000, 512, IndexSpec()) == "hnsw"


def test_flat_scores_are_exact_cosines_with_item_ids():
    rows = low_dim(500)
    ids = np.arange(500, dtype=np.int64) * 5 + 3
    index = build(rows, ids, IndexSpec(), 128)
    queries = low_dim(7, seed=1)
    scores, found = index.search(queries, 10)
    expected = np.sort(queries @ rows.T, axis=1)[:, ::-1][:, :10]
    assert index.kind == "flat"
    np.testing.assert_allclose(scores, expected, atol=1e-5)
    np.testing.assert_array_equal(found, exact_top(queries, rows, ids))


def test_hnsw_reduces_to_the_intrinsic_dimension_and_reranks_exactly():
    rows = low_dim(4000)
    ids = np.arange(4000, dtype=np.int64) + 100
    index = build(rows, ids, IndexSpec(kind="hnsw", min_reduced_dim=8), 128)
    assert "PCA 128→8" in index.describe() and "re-rank ×4" in index.describe()
    queries = low_dim(200, seed=2)
    scores, found = index.search(queries, 10)
    assert recall_at(found, exact_top(queries, rows, ids)) >= 0.95
    # scores are the true cosines of the returned rows (re-ranked on the full vectors), best first
    true = np.einsum("qd,qkd->qk", queries, rows[found - 100])
    np.testing.assert_allclose(scores, true, atol=1e-5)
    assert np.all(np.diff(scores, axis=1) <= 1e-6)


def test_reduced_dimension_is_the_variance_holding_multiple_of_8():
    assert reduced_dim(low_dim(3000, rank=8), IndexSpec(min_reduced_dim=8)) == 8
    assert reduced_dim(low_dim(3000, rank=20), IndexSpec(min_reduced_dim=8)) == 24
    assert reduced_dim(low_dim(3000, rank=8), IndexSpec()) == 32  # the floor
    random = np.random.default_rng(0).standard_normal((3000, 64)).astype(np.float32)
    assert reduced_dim(random, IndexSpec(min_reduced_dim=8)) >= 56  # no structure: nearly every dimension


def test_pca_centring_does_not_bend_cosine_ranking_when_rows_share_a_large_mean():
    # real embeddings sit in a cone (a large common component); inner products after centring would rank wrongly
    rows = low_dim(3000, offset=3.0)
    ids = np.arange(3000, dtype=np.int64)
    index = build(rows, ids, IndexSpec(kind="hnsw", min_reduced_dim=8), 128)
    queries = low_dim(100, seed=3, offset=3.0)
    _, found = index.search(queries, 10)
    assert recall_at(found, exact_top(queries, rows, ids)) >= 0.95


def test_random_rows_build_the_graph_on_full_vectors():
    rows = np.random.default_rng(0).standard_normal((1500, 64)).astype(np.float32)
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    index = build(rows, np.arange(1500, dtype=np.int64), IndexSpec(kind="hnsw", ef_search=64), 64)
    assert "PCA" not in index.describe() and "efSearch 64" in index.describe()


@pytest.mark.parametrize("rows_as, tolerance", [("fp16", 5e-4), ("fp32", 1e-5)])
def test_graph_scores_are_the_cosines_of_the_returned_rows_to_the_storage_precision(rows_as, tolerance):
    rows = np.random.default_rng(0).standard_normal((1500, 64)).astype(np.float32)
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    ids = np.arange(1500, dtype=np.int64) + 50
    index = build(rows, ids, IndexSpec(kind="hnsw", ef_search=256, hnsw_rows=rows_as), 64)
    assert f"over {rows_as} rows" in index.describe()
    queries = rows[:40] + 0.1 * np.random.default_rng(1).standard_normal((40, 64)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    scores, found = index.search(queries, 10)
    assert recall_at(found, exact_top(queries, rows, ids)) >= 0.97
    true = np.einsum("qd,qkd->qk", queries, rows[found - 50])
    np.testing.assert_allclose(scores, true, atol=tolerance)


def test_tuning_picks_the_smallest_breadth_reaching_the_target():
    rows = low_dim(3000)
    ids = np.arange(3000, dtype=np.int64)
    loose = build(rows, ids, IndexSpec(kind="hnsw", min_reduced_dim=8, hnsw_m=8, target_recall=0.5), 128)
    strict = build(rows, ids, IndexSpec(kind="hnsw", min_reduced_dim=8, hnsw_m=8, target_recall=0.999), 128)

    def ef(index: VectorIndex) -> int:
        return int(index.describe().split("efSearch ")[1].split(",")[0])

    assert ef(loose) < ef(strict)
    queries = low_dim(200, seed=4)
    _, found = strict.search(queries, 10)
    assert recall_at(found, exact_top(queries, rows, ids)) >= 0.97


def test_ivfpq_searches_removes_and_survives_a_file_round_trip(tmp_path):
    rows = low_dim(1200, dim=32, rank=4)
    ids = np.arange(1200, dtype=np.int64) * 2
    index = build(rows, ids, IndexSpec(kind="ivfpq", min_reduced_dim=8), 32)
    assert index.kind == "ivfpq" and "IVF" in index.describe()
    queries = low_dim(50, dim=32, rank=4, seed=5)
    _, found = index.search(queries, 10)
    assert recall_at(found, exact_top(queries, rows, ids)) >= 0.5  # coarse codes: approximate by design
    assert index.can_remove() and index.remove(ids[:100]) == 100 and index.count == 1100
    index.write(tmp_path / "v.faiss")
    again = VectorIndex.read(tmp_path / "v.faiss", "ivfpq")
    assert again.describe() == index.describe()
    np.testing.assert_array_equal(again.search(queries, 10)[1], index.search(queries, 10)[1])
    assert not np.isin(again.search(queries, 10)[1], ids[:100]).any()


def test_hnsw_cannot_remove_in_place():
    rows = low_dim(300)
    index = build(rows, np.arange(300, dtype=np.int64), IndexSpec(kind="hnsw"), 128)
    assert not index.can_remove()
    with pytest.raises(ConfigError):
        index.remove(np.array([1]))


def test_search_asks_for_no_more_than_the_row_count_and_an_empty_index_answers_nothing():
    rows = low_dim(3)
    index = build(rows, np.arange(3, dtype=np.int64), IndexSpec(), 128)
    assert index.search(rows[:1], 10)[1].shape == (1, 3)
    empty = build(np.zeros((0, 128), np.float32), np.zeros(0, np.int64), IndexSpec(), 128)
    assert empty.search(rows[:1], 10)[1].shape == (1, 0)


def test_a_corrupt_vector_file_is_an_index_error(tmp_path):
    (tmp_path / "bad.faiss").write_bytes(b"not a faiss index")
    with pytest.raises(IndexCorruptError, match="bad.faiss"):
        VectorIndex.read(tmp_path / "bad.faiss", "flat")


def unit_random(n: int, dim: int, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_exact_search_matches_a_sort_of_all_scores_in_any_block_size(monkeypatch):
    rows, queries = unit_random(300, 16), unit_random(9, 16, seed=1)
    expected = np.argsort(-(queries @ rows.T), axis=1, kind="stable")[:, :5]
    monkeypatch.setattr("omniembed.index.exact.SCORE_CELLS", 600)  # two queries per block: blocks must line up
    scores, found = exact_search(rows, queries, 5)
    np.testing.assert_array_equal(found, expected)
    np.testing.assert_allclose(scores, np.take_along_axis(queries @ rows.T, expected, axis=1), atol=1e-6)
    assert exact_search(rows[:3], queries, 5)[1].shape == (9, 3)  # k above the row count: every row, ranked


@pytest.mark.parametrize("scan", sorted(exact.SCANS))
def test_each_few_query_scan_ranks_as_a_sort_of_all_scores(scan):
    rows, queries = unit_random(300, 16), unit_random(3, 16, seed=1)
    expected = np.argsort(-(queries @ rows.T), axis=1, kind="stable")[:, :5]
    scores, found = exact.SCANS[scan](rows, queries, 5)
    np.testing.assert_array_equal(found, expected)
    assert found.dtype == np.int64 and scores.dtype == np.float32
    np.testing.assert_allclose(scores, np.take_along_axis(queries @ rows.T, expected, axis=1), atol=1e-6)


def test_the_faster_few_query_scan_is_timed_once_per_size_and_kept(monkeypatch):
    calls = []

    def timed(name, delay):
        def scan(rows, queries, k):
            calls.append(name)
            time.sleep(delay)
            return exact.blas_scan(rows, queries, k)
        return scan

    monkeypatch.setattr(exact, "SCANS", {"slow": timed("slow", 0.004), "quick": timed("quick", 0.0)})
    monkeypatch.setattr(exact, "_chosen", {})
    rows = unit_random(300, 16)
    assert exact.few_query_scan(rows) == "quick" and calls.count("slow") == exact.CALIBRATION_TRIALS
    exact_search(rows, rows[:2], 3)
    exact_search(rows[:290], rows[:2], 3)  # the same size bucket (300 and 290 rows: 9 bits): no new timing
    assert calls.count("slow") == exact.CALIBRATION_TRIALS and calls[-2:] == ["quick", "quick"]
    exact.few_query_scan(unit_random(600, 16))  # a new size is timed afresh
    assert calls.count("slow") == 2 * exact.CALIBRATION_TRIALS


def test_flat_search_sees_rows_added_and_removed_after_the_build():
    rows = unit_random(200, 32)
    index = build(rows[:100], np.arange(100, dtype=np.int64), IndexSpec(), 32)
    index.add(rows[100:], np.arange(100, 200, dtype=np.int64) + 1000)
    assert index.remove(np.arange(50, dtype=np.int64)) == 50
    scores, found = index.search(rows[[10, 150]], 1)
    assert found[0, 0] != 10 and found[1, 0] == 1150 and scores[1, 0] == pytest.approx(1.0, abs=1e-6)


def test_auto_falls_back_to_exact_search_when_no_breadth_reaches_the_target(monkeypatch):
    # random rows with a tiny graph and two narrow breadths: recall stays far below 0.99
    monkeypatch.setattr(vectors, "EF_SEARCH_STEPS", (10, 12))
    monkeypatch.setattr(vectors, "exact_is_faster", lambda *a: (False, 0.1, 1.0))  # only recall decides here
    rows = unit_random(2000, 64)
    ids = np.arange(2000, dtype=np.int64) + 7
    spec = IndexSpec(flat_max_cells=64 * 100, hnsw_m=4, ef_construction=8, target_recall=0.99)
    reported = []
    index = build(rows, ids, spec, 64, progress=reported.append)
    assert index.kind == "flat" and index.count == 2000 and sum(reported) == 2000
    assert re.search(r"exact: hnsw reached recall@10 0\.\d{3} / 0\.\d{3} on the halves of held-out rows at "
                     r"efSearch 12, not 0\.99 by a standard error's margin\)$", index.describe())
    queries = unit_random(20, 64, seed=3)
    np.testing.assert_array_equal(index.search(queries, 10)[1], exact_top(queries, rows, ids))
    # forced, the same graph is kept (the user asked for it) at its widest breadth
    forced = build(rows, ids, IndexSpec(**{**spec.to_dict(), "kind": "hnsw"}), 64)
    assert forced.kind == "hnsw" and "efSearch 12" in forced.describe()
    # with sample queries of its own to judge it instead, the build neither holds rows out nor falls back
    unjudged = build(rows, ids, spec, 64, held_out=False)
    assert unjudged.kind == "hnsw" and unjudged.count == 2000 and "efSearch 12" in unjudged.describe()


def test_auto_keeps_the_graph_only_when_it_beats_the_exact_scan(monkeypatch):
    rows = low_dim(1500)
    ids = np.arange(1500, dtype=np.int64)
    spec = IndexSpec(flat_max_cells=128 * 100, min_reduced_dim=8, hnsw_m=16, ef_construction=40)
    monkeypatch.setattr(vectors, "exact_is_faster", lambda *a: (True, 1.0, 0.1))
    exact = build(rows, ids, spec, 128)
    assert exact.kind == "flat" and "(exact: 0.10 ms per query against hnsw efSearch " in exact.describe()
    assert exact.describe().endswith("'s 1.00 ms)")
    monkeypatch.setattr(vectors, "exact_is_faster", lambda *a: (False, 0.1, 1.0))
    kept = build(rows, ids, spec, 128)
    assert kept.kind == "hnsw" and kept.count == 1500


def test_a_recall_reaches_the_target_only_by_one_standard_error_of_its_mean():
    assert reaches(np.full(100, 0.97), 0.97)  # no spread, no margin
    spread = np.array([1.0, 0.94] * 50)  # mean 0.97, standard error 0.003
    assert not reaches(spread, 0.97) and reaches(spread, 0.966)
    assert not reaches(np.array([1.0, 0.9, 1.0, 0.9]), 0.93)  # few queries: a wide margin (mean 0.95, SE 0.029)


def test_breadth_must_reach_the_target_on_the_verification_queries_too():
    rows = low_dim(3000)
    ids = np.arange(3000, dtype=np.int64)
    index = build(rows, ids, IndexSpec(kind="hnsw", min_reduced_dim=8, ef_search=16), 128)
    held = np.zeros(3000, bool)
    queries = low_dim(50, seed=6)
    truth = held_truth(rows, ids, held, queries)
    honest = tune_breadth(index, "efSearch", (16, 64, 256), 0.95, (queries, truth), (queries, truth))
    assert honest.value in (16, 64, 256) and honest.verify_recall >= 0.95
    # a verification set whose neighbours the index cannot return: no breadth passes, whatever the tuning set says
    wrong = tune_breadth(index, "efSearch", (16, 64, 256), 0.95, (queries, truth), (queries, truth + 10_000))
    assert wrong.value is None and wrong.tune_recall >= 0.95 and wrong.verify_recall == 0.0
    # a tuning set that never reaches it: the verification set is measured at the widest breadth all the same, so
    # that the report states both halves' recall there (it said 0.000 for a set never searched)
    short = tune_breadth(index, "efSearch", (16, 64, 256), 0.95, (queries, truth + 10_000), (queries, truth))
    assert short.value is None and short.tune_recall == 0.0 and short.verify_recall >= 0.95


def test_spec_round_trips_and_rejects_bad_values():
    spec = IndexSpec(kind="hnsw", hnsw_m=16, target_recall=0.9)
    assert IndexSpec.from_dict(spec.to_dict()) == spec
    with pytest.raises(ConfigError):
        IndexSpec(kind="annoy").validate()
    with pytest.raises(ConfigError, match="hnsw_rows 'int4'"):
        IndexSpec(hnsw_rows="int4").validate()
    with pytest.raises(ConfigError):
        IndexSpec.from_dict({"hnsw_M": 3})


def spread(n: int, seed: int = 0, noise: float = 0.3, shift: float = 0.0) -> np.ndarray:
    """Unit rows [n, 64] around a 16-d subspace with ``noise`` off it, moved ``shift`` along a fixed direction."""
    g = np.random.default_rng(seed)
    w = np.random.default_rng(99).standard_normal((16, 64)).astype(np.float32)
    x = g.standard_normal((n, 16), dtype=np.float32) @ w + 4 * noise * g.standard_normal((n, 64), dtype=np.float32)
    x += 4 * shift * np.random.default_rng(7).standard_normal(64).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_queries_from_elsewhere_in_the_space_set_the_breadth_their_own_recall_needs():
    """Rows held out of the index are easy queries; another modality's embeddings (here: rows moved off the
    index's centre) need a wider search for the same recall, which only they can measure."""
    rows = spread(4000)
    ids = np.arange(4000, dtype=np.int64) + 5
    index = build(rows, ids, IndexSpec(kind="hnsw", hnsw_m=4, ef_construction=16, target_recall=0.95), 64)
    queries, fresh = spread(200, seed=11, noise=0.02, shift=2.0), spread(200, seed=12, noise=0.02, shift=2.0)
    truth = exact_top(fresh, rows, ids)
    assert recall_at(index.search(fresh, 10)[1], truth) < 0.95  # the breadth tuned on held-out rows
    tuned_index, tuned = vectors.tune_to_queries(index, rows, ids, queries, 0.95, auto=False)
    assert tuned_index is index and tuned.tune_recall >= 0.95 and tuned.verify_recall >= 0.95
    assert f"efSearch {tuned.value}" in index.describe()
    assert recall_at(index.search(fresh, 10)[1], truth) >= 0.93


def test_auto_turns_exact_when_the_tuning_queries_reach_no_breadth(monkeypatch):
    monkeypatch.setattr(vectors, "EF_SEARCH_STEPS", (10, 12))
    rows = unit_random(2000, 64)
    ids = np.arange(2000, dtype=np.int64)
    index = build(rows, ids, IndexSpec(kind="hnsw", hnsw_m=4, ef_construction=8, ef_search=12), 64)
    queries = unit_random(40, 64, seed=4)
    kept, missed = vectors.tune_to_queries(index, rows, ids, queries, 0.99, auto=False)
    assert kept.kind == "hnsw" and missed.value is None and "efSearch 12" in kept.describe()
    exact, _ = vectors.tune_to_queries(index, rows, ids, queries, 0.99, auto=True)
    assert exact.kind == "flat" and exact.count == 2000
    assert "on the halves of the tuning queries at efSearch 12, not 0.99 by a standard error's margin" in \
        exact.describe()
    np.testing.assert_array_equal(exact.search(queries, 10)[1], exact_top(queries, rows, ids))
