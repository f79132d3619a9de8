"""Retrieval index: the index OmniEmbed chooses vs brute force (numpy, faiss ``IndexFlatIP``) and plain faiss HNSW,
side by side in one run.

    .venv/bin/python tools/bench_index.py [--sizes 100000,1000000] [--dim 512] [--data lowdim,random]
                                          [--random-max 100000] [--peer-max 100000] [--latency-queries 200]

For each size and data set it reports build time, memory, single-query top-10 latency p50/p99 and recall@10
against exact search on fresh queries from the same distribution:

* **numpy brute force** — ``rows @ q`` then ``argpartition`` (no build; memory = the rows).
* **faiss IndexFlatIP** — exact.
* **omniembed** — ``omniembed.index.vectors.build`` with the default :class:`IndexSpec` (what ``Index`` builds for
  that many rows: HNSW over PCA-reduced rows, exact re-ranking, search breadth tuned to the target recall), searched
  through ``VectorIndex.search`` as ``Index.search`` does. Build time includes training and tuning.
* **faiss HNSWFlat** M 32, efConstruction 40, searched at efSearch 16, 24, 32 … 512 (steps of ×1.5 at most) —
  the peer, built here in the same run up to ``--peer-max`` rows (its 1M build takes ~6 minutes on 2 cores). The
  speed ratio against it is taken at equal recall: against the smallest efSearch whose recall@10 is at least
  omniembed's. Where faiss HNSW is not built, or reaches omniembed's recall at no efSearch tried, no ratio is
  printed.

Data: both sets are synthetic. ``lowdim`` is ``unit(z @ W + 0.02·noise)`` with ``z ~ N(0, I_32)``,
``W ~ N(0, 1)^(32×dim)``: exactly 32 intrinsic dimensions, which flatters any PCA-based index — real sentence
embeddings need 237 of 384 PCA dimensions for 95 % of the variance (``../shared/design/BENCHMARKS.md``), so
figures on it are not the retrieval target and say nothing about real embeddings. ``random`` is unit Gaussian
rows, the worst case for every approximate index (built up to ``--random-max``). Memory is the growth of the
process's resident set while building (the rows themselves excluded).
"""

from __future__ import annotations

import argparse
import gc
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import faiss
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from omniembed.index.vectors import IndexSpec, build, recall_at  # noqa: E402

K = 10
RECALL_QUERIES = 1000
INTRINSIC = 32
PEER_EF_SEARCH = (16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512)
PEER = "faiss HNSWFlat M32 efC40"


@dataclass
class Row:
    name: str
    build_s: float
    memory_mib: float
    p50_ms: float
    p99_ms: float
    recall: float


def make_rows(kind: str, n: int, dim: int, seed: int) -> np.ndarray:
    """Unit rows [n, dim] (float32), generated in chunks to bound temporaries."""
    rng = np.random.default_rng(seed)
    w = np.random.default_rng(12345).standard_normal((INTRINSIC, dim), dtype=np.float32)
    out = np.empty((n, dim), np.float32)
    for start in range(0, n, 100_000):
        m = min(100_000, n - start)
        if kind == "lowdim":
            x = rng.standard_normal((m, INTRINSIC), dtype=np.float32) @ w
            x += 0.02 * rng.standard_normal((m, dim), dtype=np.float32)
        else:
            x = rng.standard_normal((m, dim), dtype=np.float32)
        out[start:start + m] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


def latencies(search: Callable[[np.ndarray], object], queries: np.ndarray) -> tuple[float, float]:
    """p50, p99 of one-query searches, ms (after two warm-up queries)."""
    for q in queries[:2]:
        search(q[None])
    times = []
    for q in queries:
        t0 = time.perf_counter()
        search(q[None])
        times.append(time.perf_counter() - t0)
    return float(np.percentile(times, 50) * 1e3), float(np.percentile(times, 99) * 1e3)


def numpy_top(rows: np.ndarray, q: np.ndarray) -> np.ndarray:
    scores = rows @ q[0]
    top = np.argpartition(-scores, K)[:K]
    return top[np.argsort(-scores[top])]


def single_thread(search: Callable[[np.ndarray], object]) -> Callable[[np.ndarray], object]:
    """faiss's own indexes, searched one query at a time as a server would (OpenMP's fork/join costs more than
    it saves for one query on a busy 2-core box; omniembed's search does the same switch itself)."""
    def run(q: np.ndarray) -> object:
        threads = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(1)
        try:
            return search(q)
        finally:
            faiss.omp_set_num_threads(threads)
    return run


def bench(kind: str, n: int, dim: int, n_latency: int, peer: bool) -> tuple[list[Row], str]:
    t0 = time.perf_counter()
    rows = make_rows(kind, n, dim, seed=0)
    queries = make_rows(kind, RECALL_QUERIES, dim, seed=1)
    ids = np.arange(n, dtype=np.int64)
    _, truth = faiss.knn(queries, rows, K, metric=faiss.METRIC_INNER_PRODUCT)
    print(f"  data + exact top-{K} of {RECALL_QUERIES} queries: {time.perf_counter() - t0:.1f} s", flush=True)
    lat_queries = queries[:n_latency]
    results = []

    p50, p99 = latencies(lambda q: numpy_top(rows, q), lat_queries)
    results.append(Row("numpy brute force", 0.0, rows.nbytes / 2**20, p50, p99, 1.0))

    gc.collect()
    before, t0 = rss_mib(), time.perf_counter()
    flat = faiss.IndexFlatIP(dim)
    flat.add(rows)
    results.append(Row("faiss IndexFlatIP", time.perf_counter() - t0, rss_mib() - before,
                       *latencies(single_thread(lambda q: flat.search(q, K)), lat_queries), 1.0))
    del flat
    gc.collect()

    before, t0 = rss_mib(), time.perf_counter()
    chosen = build(rows, ids, IndexSpec(), dim)
    build_s, memory = time.perf_counter() - t0, rss_mib() - before
    _, found = chosen.search(queries, K)
    p50, p99 = latencies(lambda q: chosen.search(q, K), lat_queries)
    results.append(Row("omniembed (chosen)", build_s, memory, p50, p99, recall_at(found, truth)))
    description = chosen.describe()
    del chosen
    gc.collect()

    if peer:
        before, t0 = rss_mib(), time.perf_counter()
        hnsw = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
        hnsw.hnsw.efConstruction = 40
        hnsw.add(rows)
        build_s, memory = time.perf_counter() - t0, rss_mib() - before
        for ef in PEER_EF_SEARCH:
            hnsw.hnsw.efSearch = ef
            _, found = hnsw.search(queries, K)
            results.append(Row(f"{PEER} ef{ef}", build_s, memory,
                               *latencies(single_thread(lambda q: hnsw.search(q, K)), lat_queries),
                               recall_at(found, truth)))
    return results, description


def print_table(rows: list[Row]) -> None:
    print(f"  {'index':<32}{'build s':>9}{'mem MiB':>10}{'p50 ms':>9}{'p99 ms':>9}{'recall@10':>11}")
    for r in rows:
        print(f"  {r.name:<32}{r.build_s:9.1f}{r.memory_mib:10.0f}{r.p50_ms:9.3f}{r.p99_ms:9.3f}{r.recall:11.3f}")
    by = {r.name: r for r in rows}
    ours = by["omniembed (chosen)"]
    ratios = [f"p50 {by['numpy brute force'].p50_ms / ours.p50_ms:.1f}× numpy's, "
              f"{by['faiss IndexFlatIP'].p50_ms / ours.p50_ms:.1f}× IndexFlatIP's (exact, recall 1.000, "
              f"against omniembed's {ours.recall:.3f})"]
    peers = [r for r in rows if r.name.startswith(PEER)]
    matched = next((r for r in peers if r.recall >= ours.recall), None)
    if matched is not None:
        ratios.append(f"vs {matched.name} at equal recall ({matched.recall:.3f} ≥ {ours.recall:.3f}): build "
                      f"{matched.build_s / ours.build_s:.2f}×, p50 {matched.p50_ms / ours.p50_ms:.2f}× "
                      "(> 1: omniembed faster)")
    elif peers:
        ratios.append(f"faiss HNSW reaches recall {ours.recall:.3f} at no efSearch up to {PEER_EF_SEARCH[-1]}: "
                      "no ratio")
    print("  omniembed: " + "; ".join(ratios))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="100000,1000000", help="comma-separated row counts")
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--data", default="lowdim,random", help="lowdim and/or random")
    parser.add_argument("--random-max", type=int, default=100_000, help="largest size run on random rows")
    parser.add_argument("--peer-max", type=int, default=100_000,
                        help="largest size the faiss HNSW peer is built at (above it, no ratio against it)")
    parser.add_argument("--latency-queries", type=int, default=200)
    args = parser.parse_args()

    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor())
    print(f"command: {' '.join(sys.argv)}")
    print(f"cpu: {cpu}; torch.get_num_threads() = {torch.get_num_threads()}; faiss {faiss.__version__}, "
          f"omp threads {faiss.omp_get_max_threads()}; defaults: {IndexSpec()}")
    for n in (int(s) for s in args.sizes.split(",")):
        for kind in args.data.split(","):
            if kind == "random" and n > args.random_max:
                continue
            label = ("unit(z@W + 0.02·noise), z ~ N(0, I_32)" if kind == "lowdim" else "random unit rows")
            print(f"\nn = {n:,}, dim = {args.dim}, {kind}: {label}", flush=True)
            rows, description = bench(kind, n, args.dim, args.latency_queries, peer=n <= args.peer_max)
            print(f"  omniembed chose: {description}")
            print_table(rows)
            if n > args.peer_max:
                print(f"  {PEER} not built at this size (--peer-max {args.peer_max}): no comparison with it")


if __name__ == "__main__":
    main()
