"""Exact top-k by inner product: one BLAS product per block of queries, or faiss's own scan for a few queries.

A batch of queries is one GEMM per block through the BLAS numpy links, then ``argpartition``, over faiss's own flat
storage (so the flat index keeps faiss's file format). For a few queries — a search — two scans are exact and which
is faster depends on the machine: numpy's product on one BLAS thread, or faiss's SIMD scan with its top-k heap
(``faiss.knn``). On a 2-core Xeon the product won (20k × 512, one query: 0.58 against faiss ``IndexFlatIP``'s
1.08 ms, ``../shared/design/BENCHMARKS.md``); on a 2-core AMD EPYC faiss's scan wins at every size tried (2k × 384:
0.05 vs 0.11 ms, 20k × 512: 1.0 vs 2.6 ms, 100k × 384: 4.9 vs 13.1 ms). So the first few-query search over rows of
a new size (row count to a power of two, and dimension) times both on three of the rows, interleaved, and that
size keeps the faster for the rest of the process. A few queries run on one thread on either side: a second
thread that must wait for a busy core costs more than it saves.
"""

from __future__ import annotations

import statistics
import time
from functools import cache
from typing import Callable

import numpy as np

from ..extras import LazyModule

FEATURE = "the retrieval index (omniembed index / search, omniembed.Index)"
threadpoolctl = LazyModule("threadpoolctl", FEATURE)
faiss = LazyModule("faiss", FEATURE)
"""faiss for the whole index package, imported at first use (one module, so one cache of its attributes)."""

SCORE_CELLS = 1 << 24
"""Queries per block: at most this many query × row scores (64 MiB of float32) held at once."""
FEW_QUERIES = 8
"""Below this many queries the scan runs on one thread, by whichever scan is faster at that size."""
CALIBRATION_TRIALS = 3

Scan = Callable[[np.ndarray, np.ndarray, int], "tuple[np.ndarray, np.ndarray]"]


def exact_search(rows: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows [N, D], queries [Q, D] (float32) → (scores [Q, k'], row positions [Q, k'] int64), k' = min(k, N),
    best first."""
    k = min(k, len(rows))
    if k == 0:
        return np.empty((len(queries), 0), np.float32), np.empty((len(queries), 0), np.int64)
    if len(queries) < FEW_QUERIES:
        return SCANS[few_query_scan(rows)](rows, queries, k)
    return blas_scan(rows, queries, k)


def blas_scan(rows: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """``queries @ rows.T`` block by block, then the top ``k`` ≤ N of each row; one BLAS thread below
    ``FEW_QUERIES`` queries."""
    if len(queries) < FEW_QUERIES:
        with _blas().limit(limits=1):
            return _blas_top(rows, queries, k)
    return _blas_top(rows, queries, k)


def faiss_scan(rows: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """faiss's exhaustive inner-product search (its SIMD scan and heap below 20 queries), k ≤ N; one OpenMP thread
    below ``FEW_QUERIES`` queries."""
    threads = faiss.omp_get_max_threads()
    if len(queries) < FEW_QUERIES:
        faiss.omp_set_num_threads(1)
    try:
        scores, found = faiss.knn(np.ascontiguousarray(queries, dtype=np.float32),
                                  np.ascontiguousarray(rows, dtype=np.float32), k, metric=faiss.METRIC_INNER_PRODUCT)
    finally:
        faiss.omp_set_num_threads(threads)
    return scores.astype(np.float32, copy=False), found.astype(np.int64, copy=False)


SCANS: dict[str, Scan] = {"blas": blas_scan, "faiss": faiss_scan}
_chosen: dict[tuple[int, int], str] = {}
"""(row count's bit length, dimension) → the scan that was faster for a few queries at that size, this process."""


def few_query_scan(rows: np.ndarray) -> str:
    """The name of the faster few-query scan over rows of this size, timed on first use (see the module note)."""
    size = (len(rows).bit_length(), rows.shape[1])
    if size not in _chosen:
        probes = rows[:CALIBRATION_TRIALS]
        times: dict[str, list[float]] = {name: [] for name in SCANS}
        for probe in probes:
            for name, scan in SCANS.items():
                t0 = time.perf_counter()
                scan(rows, probe[None], min(10, len(rows)))
                times[name].append(time.perf_counter() - t0)
        _chosen[size] = min(times, key=lambda name: statistics.median(times[name]))
    return _chosen[size]


def _blas_top(rows: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    scores_out = np.empty((len(queries), k), np.float32)
    found_out = np.empty((len(queries), k), np.int64)
    block = max(1, SCORE_CELLS // max(len(rows), 1))
    for start in range(0, len(queries), block):
        scores = queries[start:start + block] @ rows.T  # [q, N]
        if k < len(rows):
            top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        else:
            top = np.broadcast_to(np.arange(len(rows)), scores.shape)
        picked = np.take_along_axis(scores, top, axis=1)
        order = np.argsort(-picked, axis=1, kind="stable")
        scores_out[start:start + block] = np.take_along_axis(picked, order, axis=1)
        found_out[start:start + block] = np.take_along_axis(top, order, axis=1)
    return scores_out, found_out


@cache
def _blas():
    """The BLAS libraries numpy has loaded (threadpoolctl looks them up once)."""
    return threadpoolctl.ThreadpoolController().select(user_api="blas")
