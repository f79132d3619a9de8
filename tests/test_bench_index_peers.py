"""The faiss peers of tools/bench_index.py: built at the asked breadth, cached on disk keyed by the rows, and read back
with the build time measured when they were built."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import faiss
import numpy as np
import pytest

spec = importlib.util.spec_from_file_location("index_peers", Path(__file__).parents[1] / "tools" / "index_peers.py")
index_peers = importlib.util.module_from_spec(spec)
sys.modules.setdefault("index_peers", index_peers)  # its dataclass looks its module up there
spec.loader.exec_module(index_peers)


def unit_rows(n: int, dim: int = 16, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_a_cached_peer_is_read_back_with_its_build_time_and_the_same_answers(tmp_path, monkeypatch):
    rows, queries = unit_rows(600), unit_rows(20, seed=1)
    built = index_peers.build_peer("HNSW16,Flat", rows, 24, tmp_path)
    assert not built.cached and built.build_s > 0 and built.memory_mib > 0
    stored = json.loads(next(tmp_path.glob("*.json")).read_text())
    assert stored["factory"] == "HNSW16,Flat" and stored["rows"] == [600, 16]

    def no_build(*args):
        raise AssertionError("a cached peer was rebuilt")

    monkeypatch.setattr(index_peers.faiss, "index_factory", no_build)
    again = index_peers.build_peer("HNSW16,Flat", rows, 24, tmp_path)
    assert again.cached and again.build_s == built.build_s
    np.testing.assert_array_equal(again.index.search(queries, 5)[1], built.index.search(queries, 5)[1])


def test_other_rows_or_another_breadth_never_reuse_a_cached_peer(tmp_path):
    rows = unit_rows(600)
    index_peers.build_peer("HNSW16,Flat", rows, 24, tmp_path)
    moved = rows.copy()
    moved[0] = unit_rows(1, seed=5)[0]  # the fingerprint samples row 0
    assert not index_peers.build_peer("HNSW16,Flat", moved, 24, tmp_path).cached
    assert not index_peers.build_peer("HNSW16,Flat", rows, 32, tmp_path).cached
    assert not index_peers.build_peer("HNSW16,Flat", rows[:599], 24, tmp_path).cached
    assert len(list(tmp_path.glob("*.faiss"))) == 4


def test_the_graph_under_a_refine_and_a_coarse_quantiser_is_built_at_the_asked_breadth():
    rows = unit_rows(2000)
    refined = index_peers.build_peer("HNSW16_SQ8,RFlat", rows, 24).index  # kept: downcasts do not own the index
    assert faiss.downcast_index(faiss.downcast_index(refined).base_index).hnsw.efConstruction == 24
    lists = index_peers.build_peer("IVF16_HNSW8,Flat", rows, 12).index
    ivf = faiss.extract_index_ivf(lists)
    assert faiss.downcast_index(ivf.quantizer).hnsw.efConstruction == 12 and ivf.ntotal == 2000


def test_each_graph_peer_is_built_at_the_efconstruction_it_names_or_the_default():
    bench_spec = importlib.util.spec_from_file_location("bench_index",
                                                        Path(__file__).parents[1] / "tools" / "bench_index.py")
    bench_index = importlib.util.module_from_spec(bench_spec)
    sys.modules.setdefault("bench_index", bench_index)  # its dataclasses look their module up there
    bench_spec.loader.exec_module(bench_index)
    assert bench_index.parse_peers("hnsw,hnswfp16:100,ivf", "40,100") == {"hnsw": (40, 100), "hnswfp16": (100,),
                                                                          "ivf": ()}
    assert bench_index.parse_peers("hnsw:40/100", "40") == {"hnsw": (40, 100)}
    with pytest.raises(SystemExit, match="unknown peer 'annoy'"):
        bench_index.parse_peers("annoy", "40")
