"""Retrieval index: the index OmniEmbed chooses vs exact search (numpy, faiss ``IndexFlatIP``) and faiss's own
approximate indexes (HNSW, IVF, IVF-SQ8 with re-ranking), side by side in one run, at equal recall.

    .venv/bin/python tools/bench_index.py [--sizes 100000,1000000] [--data real,random] [--max-real 21000]
                                          [--random-max 100000] [--peer-max 1000000]
                                          [--peers hnsw,hnswfp16,hnswsq,ivf,ivfsq] [--hnsw-efc 40]
                                          [--latency-queries 200]
                                          [--cache DIR] [--peer-cache DIR] [--tune-queries 500]
                                          [--tune-target 0.95] [--sweep-ours]

For each size and data set it reports build time, memory, single-query top-10 latency p50/p99 and recall@10
against exact search on 1000 queries that are not in the index:

* **numpy brute force** — ``rows @ q`` then ``argpartition`` (no build; memory = the rows).
* **faiss IndexFlatIP** — exact.
* **omniembed** — ``omniembed.index.vectors.build`` with the default :class:`IndexSpec` (what ``Index`` builds for
  that many rows: exact search, or a graph whose search breadth is tuned on rows held out of the build and verified
  on a second held-out set, kept only when it reaches the target recall and beats the exact scan), searched
  through ``VectorIndex.search`` as ``Index.search`` does. Build time includes training and tuning. With
  ``--tune-queries N``, N of the held-out queries are kept apart as sample queries, the same index is re-tuned on
  them (``Index.tune``: their exact top-10 is the truth; ``--tune-target``: its ``target_recall``) and measured
  again — the build time then includes that tuning — and every row is measured on the remaining queries. With
  ``--sweep-ours`` its graph is also measured at each efSearch the HNSW peers are swept over (rows "omniembed's
  graph efSearch N"): its whole recall–latency curve, of which the tuned breadth is one point.
* **faiss peers**, built here in the same run up to ``--peer-max`` rows and each swept over its search breadth:
  ``IndexHNSWFlat`` M 32, efConstruction 40 (``--hnsw-efc``; efSearch 16 … 1024); the same graph over fp16
  rows (``IndexHNSWSQ``, what omniembed's graph stores, in faiss's insertion order), and over SQ8 codes
  re-ranked ×2 on the full vectors (``IndexRefineFlat``); ``IVF{nlist},Flat`` and
  ``IVF{nlist},SQ8`` re-ranked ×4, nlist ≈ 4·√N (an HNSW coarse quantiser from 4096 lists), nprobe 1 … 256.
  ``--peer-cache DIR`` keeps each built peer on disk keyed by the rows (``tools/index_peers.py``), so a 1M-row
  graph is built once and later runs report the build time measured then. For
  each peer the speed ratio is taken at equal recall: against its cheapest setting whose recall@10 is at least
  omniembed's; a peer that reaches omniembed's recall at no setting tried gets no ratio.

faiss indexes are searched one query at a time on one OpenMP thread (as ``VectorIndex.search`` does for one query:
OpenMP's fork/join costs more than it saves); numpy's BLAS keeps its own threads, as in ``Index.search``.

Data:

* ``real`` (dim 384): documentation lines of the installed packages embedded with the shipped all-MiniLM-L6-v2,
  cached under ``--cache`` (the path is printed); ``--max-real`` real rows, the rest of a size an augmentation of
  them (``tools/index_corpus.py`` documents both). Queries are real lines never in the index.
* ``lowdim`` (``--dim``, 512): ``unit(z @ W + 0.02·noise)`` with ``z ~ N(0, I_32)`` — exactly 32 intrinsic
  dimensions, which flatters any PCA-based index; not the retrieval target.
* ``random`` (``--dim``): unit Gaussian rows, the worst case for every approximate index (built up to
  ``--random-max``); an honest index falls back to exact search on them.

Memory is what each index holds: its serialised size (the rows for the exact scans).
"""

from __future__ import annotations

import argparse
import gc
import math
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
sys.path.insert(0, str(Path(__file__).resolve().parent))

import index_corpus  # noqa: E402
import index_peers  # noqa: E402
from index_peers import index_mib  # noqa: E402

from omniembed.index.tuning import recall_at  # noqa: E402
from omniembed.index.vectors import IndexSpec, VectorIndex, build, tune_to_queries  # noqa: E402

K = 10
QUERIES = 1000
INTRINSIC = 32
REAL_DIM = 384
HNSW_EF = (16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024)
IVF_NPROBE = (1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256)
PEERS = {"hnsw": True, "hnswfp16": True, "hnswsq": True, "ivf": False, "ivfsq": False}
"""The faiss peers ``--peers`` names, each with whether it is a graph (built at each efConstruction asked for)."""
OURS = "omniembed (chosen)"
OURS_TUNED = "omniembed (chosen, tuned on sample queries)"
OURS_SWEPT = "omniembed's graph"
REFINE_GRAPH = 2.0
"""faiss HNSW over SQ8 codes re-ranks 2 × k candidates on the full rows (at 200k rows ×2 already matched the recall
of the graph over full vectors at every efSearch)."""
REFINE_IVF = 4.0
SWEEP_STOP = 0.999
"""A peer's sweep stops once its recall reaches this (wider settings only cost time)."""


@dataclass
class Row:
    name: str
    family: str
    build_s: float
    memory_mib: float
    p50_ms: float
    p99_ms: float
    recall: float


def make_rows(kind: str, n: int, dim: int, seed: int) -> np.ndarray:
    """Synthetic unit rows [n, dim] (float32), generated in chunks to bound temporaries."""
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


def sweep(name: str, factory: str, rows: np.ndarray, queries: np.ndarray, truth: np.ndarray,
          lat_queries: np.ndarray, param: str, values: tuple[int, ...], efc: int = 40, k_factor: float = 0.0,
          cache: Path | None = None) -> list[Row]:
    """Build (or read from ``cache``) faiss ``factory`` (L2 on unit rows ranks as cosine), then one row per
    ``param`` value until the recall reaches :data:`SWEEP_STOP`; ``k_factor``: re-rank that many × k candidates."""
    peer = index_peers.build_peer(factory, rows, efc, cache)
    index = peer.index
    if k_factor:
        faiss.downcast_index(index).k_factor = k_factor
    print(f"  {name}: {'read from the cache' if peer.cached else 'built'} ({peer.build_s:.0f} s build)", flush=True)
    space = faiss.ParameterSpace()
    faiss.omp_set_num_threads(1)
    try:
        return breadth_rows(name, peer.build_s, peer.memory_mib, param, values,
                            lambda value: space.set_index_parameter(index, param, value),
                            lambda q: index.search(q, K), queries, truth, lat_queries)
    finally:
        faiss.omp_set_num_threads(THREADS)


def breadth_rows(name: str, build_s: float, memory_mib: float, param: str, values: tuple[int, ...],
                 set_breadth: Callable[[int], object], search: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]],
                 queries: np.ndarray, truth: np.ndarray, lat_queries: np.ndarray) -> list[Row]:
    """One row (family ``name``) per ``param`` value, each set by ``set_breadth`` before ``search`` (queries
    [Q, D] → (scores, ids [Q, K])) is measured, until the recall reaches :data:`SWEEP_STOP`."""
    out = []
    for value in values:
        set_breadth(value)
        recall = recall_at(search(queries)[1], truth)
        out.append(measured(Row(f"{name} {param} {value}", name, build_s, memory_mib, *latencies(search, lat_queries),
                                recall)))
        if recall >= SWEEP_STOP:
            break
    return out


def peers(rows: np.ndarray, queries: np.ndarray, truth: np.ndarray, lat_queries: np.ndarray,
          chosen: dict[str, tuple[int, ...]], cache: Path | None) -> list[Row]:
    nlist = 1 << round(math.log2(4 * math.sqrt(len(rows))))
    quantizer = "_HNSW32" if nlist >= 4096 else ""  # a flat coarse quantiser would scan 4k+ centroids per query
    out = []
    for efc in chosen.get("hnsw", ()):
        out += sweep(f"faiss HNSWFlat M32 efC{efc}", "HNSW32,Flat", rows, queries, truth, lat_queries, "efSearch",
                     HNSW_EF, efc, cache=cache)
    for efc in chosen.get("hnswfp16", ()):
        out += sweep(f"faiss HNSW32 fp16 rows efC{efc}", "HNSW32,SQfp16", rows, queries, truth, lat_queries,
                     "efSearch", HNSW_EF, efc, cache=cache)
    for efc in chosen.get("hnswsq", ()):
        out += sweep(f"faiss HNSW32_SQ8 efC{efc} re-rank ×{REFINE_GRAPH}", "HNSW32_SQ8,RFlat", rows, queries, truth,
                     lat_queries, "efSearch", HNSW_EF, efc, REFINE_GRAPH, cache)
    if "ivf" in chosen:
        out += sweep(f"faiss IVF{nlist}{quantizer},Flat", f"IVF{nlist}{quantizer},Flat", rows, queries, truth,
                     lat_queries, "nprobe", IVF_NPROBE, cache=cache)
    if "ivfsq" in chosen:
        out += sweep(f"faiss IVF{nlist}{quantizer},SQ8 re-rank ×{REFINE_IVF}", f"IVF{nlist}{quantizer},SQ8,RFlat",
                     rows, queries, truth, lat_queries, "nprobe", IVF_NPROBE, k_factor=REFINE_IVF, cache=cache)
    return out


def parse_peers(text: str, default_efc: str) -> dict[str, tuple[int, ...]]:
    """``--peers`` → {peer: efConstruction values} (() for the IVF peers): ``hnsw,hnswfp16:100,ivf`` with
    ``default_efc`` "40" → {"hnsw": (40,), "hnswfp16": (100,), "ivf": ()}."""
    out = {}
    for item in text.split(","):
        name, _, efc = item.partition(":")
        if name not in PEERS:
            raise SystemExit(f"--peers: unknown peer '{name}' (one of {', '.join(PEERS)})")
        out[name] = tuple(int(v) for v in (efc or default_efc).replace("/", ",").split(",")) if PEERS[name] else ()
    return out


def bench(rows: np.ndarray, queries: np.ndarray, n_latency: int, chosen_peers: dict[str, tuple[int, ...]],
          peer_cache: Path | None,
          tune_set: np.ndarray | None = None, tune_target: float | None = None,
          sweep_ours: bool = False) -> tuple[list[Row], str]:
    """Every row measured on ``queries``; with ``tune_set`` (sample queries kept apart from them) omniembed's index
    is measured a second time after ``Index.tune``'s re-tuning on those queries to ``tune_target`` (default: the
    spec's target recall); with ``sweep_ours`` its graph is then measured at each of the peers' efSearch values."""
    t0 = time.perf_counter()
    _, truth = faiss.knn(queries, rows, K, metric=faiss.METRIC_INNER_PRODUCT)
    print(f"  exact top-{K} of {len(queries)} queries: {time.perf_counter() - t0:.1f} s", flush=True)
    lat_queries = queries[:n_latency]
    results = [Row("numpy brute force", "exact", 0.0, rows.nbytes / 2**20,
                   *latencies(lambda q: numpy_top(rows, q), lat_queries), 1.0)]

    t0 = time.perf_counter()
    flat = faiss.IndexFlatIP(rows.shape[1])
    flat.add(rows)
    build_s, memory = time.perf_counter() - t0, rows.nbytes / 2**20
    faiss.omp_set_num_threads(1)
    results.append(Row("faiss IndexFlatIP", "exact", build_s, memory,
                       *latencies(lambda q: flat.search(q, K), lat_queries), 1.0))
    faiss.omp_set_num_threads(THREADS)
    flat.reset()  # its rows' memory back before the next build

    gc.collect()
    t0 = time.perf_counter()
    chosen = build(rows, np.arange(len(rows), dtype=np.int64), IndexSpec(), rows.shape[1])
    build_s, memory = time.perf_counter() - t0, index_mib(chosen.index)
    recall = recall_at(chosen.search(queries, K)[1], truth)
    results.append(measured(Row(OURS, OURS, build_s, memory, *latencies(lambda q: chosen.search(q, K), lat_queries),
                                recall)))
    print(f"  omniembed built in {build_s:.1f} s: {chosen.describe()}", flush=True)
    description = chosen.describe()
    if tune_set is not None and (chosen.kind != "flat" or chosen.reason):
        t0 = time.perf_counter()
        ids = np.arange(len(rows), dtype=np.int64)
        if chosen.kind == "flat":  # as Index.tune, the graph its build abandoned on held-out rows, judged afresh
            chosen = build(rows, ids, IndexSpec(), rows.shape[1], held_out=False)
        chosen, tuned = tune_to_queries(chosen, rows, ids, tune_set, tune_target or IndexSpec().target_recall,
                                        auto=True)
        tune_s = time.perf_counter() - t0
        print(f"  tuned on {len(tune_set)} sample queries in {tune_s:.1f} s (recall@10 {tuned.tune_recall:.3f} / "
              f"{tuned.verify_recall:.3f} on their halves): {chosen.describe()}", flush=True)
        recall = recall_at(chosen.search(queries, K)[1], truth)
        results.append(measured(Row(OURS_TUNED, OURS_TUNED, build_s + tune_s, index_mib(chosen.index),
                                    *latencies(lambda q: chosen.search(q, K), lat_queries), recall)))
    if sweep_ours and chosen.kind == "hnsw":
        results += sweep_chosen(chosen, queries, truth, lat_queries, build_s)
    chosen = None  # its memory back before the peers are built and measured
    results += peers(rows, queries, truth, lat_queries, chosen_peers, peer_cache)
    return results, description


def sweep_chosen(chosen: VectorIndex, queries: np.ndarray, truth: np.ndarray, lat_queries: np.ndarray,
                 build_s: float) -> list[Row]:
    """omniembed's built graph at each of the peers' efSearch values (until the recall reaches
    :data:`SWEEP_STOP`), searched through ``VectorIndex.search`` as ``Index.search`` does: its own recall–latency
    curve beside the peers' (the tuned breadth is one point of it)."""
    return breadth_rows(OURS_SWEPT, build_s, index_mib(chosen.index), "efSearch", HNSW_EF,
                        lambda value: chosen.set_breadth("efSearch", value), lambda q: chosen.search(q, K), queries,
                        truth, lat_queries)


def row_line(r: Row) -> str:
    return f"  {r.name:<44}{r.build_s:9.1f}{r.memory_mib:10.0f}{r.p50_ms:9.3f}{r.p99_ms:9.3f}{r.recall:11.3f}"


def measured(r: Row) -> Row:
    """Print ``r`` as soon as it is measured (a 1M-row run takes an hour on a busy box: a cut-short run keeps its
    rows)."""
    print(f"  measured:{row_line(r)[2:]}", flush=True)
    return r


def print_table(rows: list[Row]) -> None:
    print(f"  {'index':<44}{'build s':>9}{'mem MiB':>10}{'p50 ms':>9}{'p99 ms':>9}{'recall@10':>11}")
    for r in rows:
        print(row_line(r))
    for ours in (r for r in rows if r.name in (OURS, OURS_TUNED)):
        print(f"  {ours.name}: recall@10 {ours.recall:.3f}, p50 {ours.p50_ms:.3f} ms; "
              f"p50 {rows[0].p50_ms / ours.p50_ms:.2f}× numpy brute force's, {rows[1].p50_ms / ours.p50_ms:.2f}× "
              "IndexFlatIP's (> 1: omniembed faster)")
        for family in dict.fromkeys(r.family for r in rows
                                    if r.family not in ("exact", OURS, OURS_TUNED, OURS_SWEPT)):
            swept = [r for r in rows if r.family == family]
            matched = next((r for r in swept if r.recall >= ours.recall - 1e-9), None)
            if matched is None:
                print(f"    vs {family}: reaches recall {ours.recall:.3f} at no setting tried (best "
                      f"{max(r.recall for r in swept):.3f}): no ratio")
            else:
                print(f"    vs {matched.name} at equal recall ({matched.recall:.3f} ≥ {ours.recall:.3f}): "
                      f"p50 {matched.p50_ms / ours.p50_ms:.2f}× omniembed's (> 1: omniembed faster); build "
                      f"{matched.build_s:.1f} s vs {ours.build_s:.1f} s, memory {matched.memory_mib:.0f} vs "
                      f"{ours.memory_mib:.0f} MiB")


def data_set(kind: str, n: int, args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray, str]:
    if kind == "real":
        rows, queries, real = index_corpus.real_set(n, QUERIES, args.cache, args.max_real)
        label = (f"all-MiniLM-L6-v2 on documentation lines: {real:,} real rows + {n - real:,} augmented, "
                 f"{QUERIES} held-out real queries")
        return rows, queries, label
    label = "unit(z@W + 0.02·noise), z ~ N(0, I_32)" if kind == "lowdim" else "random unit rows"
    return make_rows(kind, n, args.dim, seed=0), make_rows(kind, QUERIES, args.dim, seed=1), label


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="100000,1000000", help="comma-separated row counts")
    parser.add_argument("--data", default="real,random", help="real, lowdim and/or random")
    parser.add_argument("--dim", type=int, default=512, help="dimension of the synthetic sets")
    parser.add_argument("--max-real", type=int, default=21_000,
                        help="real MiniLM rows at most (embedding runs at ~30–60 lines/s on a busy 2-core box); "
                             "rows beyond are augmented")
    parser.add_argument("--cache", type=Path, default=index_corpus.default_cache(),
                        help="where the documentation lines and their embeddings are cached")
    parser.add_argument("--random-max", type=int, default=100_000, help="largest size run on random rows")
    parser.add_argument("--peer-max", type=int, default=1_000_000, help="largest size the faiss peers are built at")
    parser.add_argument("--peers", default="hnsw,hnswfp16,hnswsq,ivf,ivfsq",
                        help="faiss peers: hnsw, hnswfp16 (HNSW over fp16 rows), hnswsq (HNSW over SQ8 codes, "
                             "re-ranked), ivf and/or ivfsq; a graph peer may name its own efConstruction values, "
                             "e.g. hnswfp16:100 or hnsw:40/100 (default: --hnsw-efc)")
    parser.add_argument("--peer-cache", type=Path, default=None,
                        help="keep built faiss peers here and read them back on later runs over the same rows "
                             "(tools/index_peers.py; a 1M-row graph takes tens of minutes to build)")
    parser.add_argument("--hnsw-efc", default="40",
                        help="efConstruction of each faiss HNSW peer built (e.g. 40,100: the faiss default family "
                             "and omniembed's build breadth, to separate graph quality from the rest)")
    parser.add_argument("--latency-queries", type=int, default=200)
    parser.add_argument("--sweep-ours", action="store_true",
                        help="also measure omniembed's graph at each efSearch the HNSW peers are swept over")
    parser.add_argument("--tune-queries", type=int, default=0,
                        help="keep this many of the held-out queries apart as sample queries, re-tune omniembed's "
                             "index on them (Index.tune) and measure it again; every row is then measured on the "
                             "remaining queries")
    parser.add_argument("--tune-target", type=float, default=None,
                        help="the recall@10 that re-tuning aims for (Index.tune's target_recall; default: the "
                             "spec's)")
    args = parser.parse_args()

    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor())
    print(f"command: {' '.join(sys.argv)}")
    print(f"cpu: {cpu}; torch.get_num_threads() = {torch.get_num_threads()}; faiss {faiss.__version__}, "
          f"omp threads {THREADS}; cache: {args.cache}; defaults: {IndexSpec()}", flush=True)
    for n in (int(s) for s in args.sizes.split(",")):
        for kind in args.data.split(","):
            if kind == "random" and n > args.random_max:
                continue
            rows, queries, label = data_set(kind, n, args)
            tune_set = None
            if args.tune_queries:
                tune_set, queries = queries[:args.tune_queries], queries[args.tune_queries:]
                label += f"; {len(tune_set)} of the queries kept apart as sample queries, {len(queries)} measured"
            print(f"\nn = {n:,}, dim = {rows.shape[1]}, {kind}: {label}", flush=True)
            chosen_peers = parse_peers(args.peers, args.hnsw_efc) if n <= args.peer_max else {}
            results, _ = bench(rows, queries, args.latency_queries, chosen_peers, args.peer_cache, tune_set,
                               args.tune_target, args.sweep_ours)
            print_table(results)
            if n > args.peer_max:
                print(f"  faiss peers not built at this size (--peer-max {args.peer_max}): no comparison with them")


THREADS = faiss.omp_get_max_threads()

if __name__ == "__main__":
    main()
