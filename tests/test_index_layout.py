"""Graph layout: rows re-numbered in walk order from the entry point, every copy of them moved in step, and no
search result changed."""

from __future__ import annotations

import faiss
import numpy as np
import pytest

from omniembed.index.layout import index_chain, lay_out_graph, walk_order


def unit_rows(n: int, dim: int = 32, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def filled(factory: str, rows: np.ndarray) -> faiss.Index:
    index = faiss.index_factory(rows.shape[1], f"IDMap,{factory}", faiss.METRIC_L2)
    if not index.is_trained:
        index.train(rows)
    index.add_with_ids(rows, np.arange(len(rows), dtype=np.int64) * 7 + 1000)  # labels unlike positions
    if "HNSW" in factory:
        faiss.ParameterSpace().set_index_parameter(index, "efSearch", 64)
    return index


def graph_of(index: faiss.Index) -> faiss.IndexHNSW:
    return next(sub for sub in index_chain(index) if isinstance(sub, faiss.IndexHNSW))


@pytest.mark.parametrize("factory", ["HNSW8,Flat", "HNSW8,SQfp16", "PCA16,HNSW8,SQfp16,RFlat"])
def test_laying_out_the_graph_changes_no_search_result(factory):
    rows, queries = unit_rows(3000), unit_rows(50, seed=1)
    index = filled(factory, rows)
    before = index.search(queries, 10)
    assert lay_out_graph(index)
    after = index.search(queries, 10)
    np.testing.assert_array_equal(after[1], before[1])  # the labels moved with their rows
    np.testing.assert_allclose(after[0], before[0], atol=1e-6)


def test_the_laid_out_graph_starts_at_its_entry_point_and_walks_in_storage_order():
    index = filled("HNSW8,Flat", unit_rows(2000))
    graph = graph_of(index)
    assert not np.array_equal(walk_order(graph.hnsw, 2000), np.arange(2000))  # insertion order is not walk order
    lay_out_graph(index)
    assert graph.hnsw.entry_point == 0
    np.testing.assert_array_equal(walk_order(graph.hnsw, 2000), np.arange(2000))


def test_walk_order_numbers_every_node_once():
    index = filled("HNSW4,Flat", unit_rows(1500, dim=8))
    order = walk_order(graph_of(index).hnsw, 1500)
    np.testing.assert_array_equal(np.sort(order), np.arange(1500))
    assert order[0] == graph_of(index).hnsw.entry_point


def test_an_index_without_a_graph_is_left_as_it_is():
    rows = unit_rows(500)
    index = filled("Flat", rows)
    assert not lay_out_graph(index)
    assert faiss.downcast_index(index).id_map.at(3) == 1021


def test_the_walk_visits_in_the_same_order_whatever_the_chunk_it_reads_links_in(monkeypatch):
    from omniembed.index import layout

    index = filled("HNSW8,Flat", unit_rows(2000))
    whole = walk_order(graph_of(index).hnsw, 2000)
    monkeypatch.setattr(layout, "WALK_CHUNK", 7)
    np.testing.assert_array_equal(walk_order(graph_of(index).hnsw, 2000), whole)
