"""Exact top-k by inner product as one BLAS product per block of queries.

numpy's ``rows @ q`` (a GEMM through the BLAS numpy links) then ``argpartition``, over faiss's own flat storage,
so the flat index keeps faiss's file format. On an idle 2-core box this took 0.58 ms against faiss
``IndexFlatIP``'s 1.08 ms for one query over 20k × 512 (``../shared/design/BENCHMARKS.md``); on a heavily loaded
one the two trade places from run to run (``tools/bench_index.py`` prints both), so count on parity, not a
speed-up. A few queries run on one BLAS thread, as faiss's one-query searches run on one OpenMP thread: a second
thread that must wait for a busy core costs more than it saves.
"""

from __future__ import annotations

from functools import cache

import numpy as np

from ..extras import LazyModule

threadpoolctl = LazyModule("threadpoolctl", "the retrieval index (omniembed index / search, omniembed.Index)")

SCORE_CELLS = 1 << 24
"""Queries per block: at most this many query × row scores (64 MiB of float32) held at once."""
FEW_QUERIES = 8
"""Below this many queries the scan runs on one BLAS thread."""


def exact_search(rows: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows [N, D], queries [Q, D] (float32) → (scores [Q, k'], row positions [Q, k'] int64), k' = min(k, N),
    best first."""
    k = min(k, len(rows))
    scores_out = np.empty((len(queries), k), np.float32)
    found_out = np.empty((len(queries), k), np.int64)
    if k == 0:
        return scores_out, found_out
    if len(queries) < FEW_QUERIES:
        with _blas().limit(limits=1):
            return _top(rows, queries, k, scores_out, found_out)
    return _top(rows, queries, k, scores_out, found_out)


def _top(rows: np.ndarray, queries: np.ndarray, k: int, scores_out: np.ndarray,
         found_out: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
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
