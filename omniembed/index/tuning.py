"""Tuning an approximate index after its build: the search breadth that reaches the target recall on held-out rows,
checked on a second held-out set, and whether the result is worth its graph against an exact scan.

Queries are index rows held out of the structure while it is tuned (rows already in a graph are found far more
easily than new queries). One set picks the breadth — the smallest step whose recall@10 reaches the target — and
an independent set verifies it; where the verification falls short the breadth steps up until both sets reach the
target. "Reaches" means by a margin of one standard error of the set's mean recall (the spread of the per-query
recalls over √Q): a breadth whose recall on a few hundred queries only just touches the target is as likely to
miss it on the next queries as to meet it (21k real MiniLM rows, target 0.97: without the margin efSearch 32
passed both held-out sets and scored 0.966 on 1000 unseen queries; with it, 40 and 0.975). When no step does, the
tuning reports it and the build falls back to exact search rather than serve a lower recall than asked for
(random unit vectors: an HNSW graph stops near recall 0.75).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .exact import exact_search

if TYPE_CHECKING:
    from .vectors import VectorIndex

RECALL_K = 10
HELD_MARGIN = 32
TIMED_QUERIES = 32


@dataclass
class Tuned:
    """What the tuning found: the breadth (None: no step reaches the target) and the recalls it measured."""

    value: int | None
    tune_recall: float
    verify_recall: float


def held_truth(vectors: np.ndarray, ids: np.ndarray, held: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Exact top-``RECALL_K`` item ids [Q, k] of ``queries`` [Q, D] among the rows of ``vectors`` [N, D] that are not
    ``held`` [N] (bool) — the rows the index holds while it is tuned."""
    extra = min(int(held.sum()), HELD_MARGIN)  # held rows may rank among a query's exact neighbours: drop them
    _, exact = exact_search(vectors, queries, RECALL_K + extra)
    truth = np.full((len(queries), RECALL_K), -1, np.int64)
    for q, row in enumerate(exact):
        kept = row[~held[row]][:RECALL_K]
        truth[q, :len(kept)] = ids[kept]
    return truth


def tune_breadth(index: "VectorIndex", param: str, steps: tuple[int, ...], target: float,
                 tune: tuple[np.ndarray, np.ndarray], verify: tuple[np.ndarray, np.ndarray]) -> Tuned:
    """The smallest ``param`` in ``steps`` whose recall@10 reaches ``target`` (:func:`reaches`) on the ``tune``
    queries and then also on the ``verify`` queries (each a pair: queries [Q, D], exact ids [Q, 10]); ``value``
    None when no step does. The recalls reported are the sets' means at the step returned, or at the widest."""
    for value in steps:
        index.set_breadth(param, value)
        tune_recalls = query_recalls(index.index.search(tune[0], RECALL_K)[1], tune[1])
        verify_recalls = None
        if reaches(tune_recalls, target):
            verify_recalls = query_recalls(index.index.search(verify[0], RECALL_K)[1], verify[1])
            if reaches(verify_recalls, target):
                return Tuned(value, float(tune_recalls.mean()), float(verify_recalls.mean()))
    if verify_recalls is None:  # the widest step's tuning set fell short: its verification set too, for the report
        verify_recalls = query_recalls(index.index.search(verify[0], RECALL_K)[1], verify[1])
    return Tuned(None, float(tune_recalls.mean()), float(verify_recalls.mean()))


def reaches(recalls: np.ndarray, target: float) -> bool:
    """Whether per-query recalls [Q] reach ``target`` by one standard error of their mean."""
    margin = recalls.std(ddof=1) / np.sqrt(len(recalls)) if len(recalls) > 1 else 0.0
    return float(recalls.mean() - margin) >= target


def exact_is_faster(index: "VectorIndex", vectors: np.ndarray, queries: np.ndarray) -> tuple[bool, float, float]:
    """(exact faster?, graph p50 ms, exact p50 ms): one-query searches of the tuned ``index`` against a BLAS scan
    of all ``vectors`` [N, D], interleaved query by query so that a busy machine slows both alike."""
    graph, exact = [], []
    for q in queries[:TIMED_QUERIES]:
        one = q[None]
        t0 = time.perf_counter()
        index.search(one, RECALL_K)
        t1 = time.perf_counter()
        exact_search(vectors, one, RECALL_K)
        t2 = time.perf_counter()
        graph.append(t1 - t0)
        exact.append(t2 - t1)
    graph_ms, exact_ms = float(np.median(graph) * 1e3), float(np.median(exact) * 1e3)
    return exact_ms <= graph_ms, graph_ms, exact_ms


def query_recalls(found: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Per query [Q] (float64), the fraction of its row of ``truth`` [Q, k] present in its row of ``found``
    [Q, ≥ k]."""
    k = truth.shape[1]
    return np.array([len(set(f[f >= 0].tolist()) & set(t.tolist())) / k for f, t in zip(found, truth)], np.float64)


def recall_at(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean fraction of each row of ``truth`` [Q, k] present in the same row of ``found`` [Q, ≥ k]."""
    return float(query_recalls(found, truth).mean()) if len(truth) else 1.0
