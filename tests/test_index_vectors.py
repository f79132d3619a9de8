"""The vector half of the index: kind by size, exact flat scores, HNSW over PCA-reduced rows with exact re-ranking,
IVF-PQ, recall tuning, removal, and files that keep their settings."""

from __future__ import annotations

import faiss
import numpy as np
import pytest

from omniembed.errors import ConfigError
from omniembed.index.errors import IndexCorruptError
from omniembed.index.vectors import IndexSpec, VectorIndex, build, choose_kind, recall_at, reduced_dim


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
    # the default: exact up to ~20k rows of 512-d, HNSW up to 5M
    assert choose_kind(19_000, 512, IndexSpec()) == "flat" and choose_kind(1_000_000, 512, IndexSpec()) == "hnsw"


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


def test_spec_round_trips_and_rejects_bad_values():
    spec = IndexSpec(kind="hnsw", hnsw_m=16, target_recall=0.9)
    assert IndexSpec.from_dict(spec.to_dict()) == spec
    with pytest.raises(ConfigError):
        IndexSpec(kind="annoy").validate()
    with pytest.raises(ConfigError):
        IndexSpec.from_dict({"hnsw_M": 3})
