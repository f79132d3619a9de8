"""The vector half of an index: which faiss structure for how many vectors, built, tuned, searched, saved.

Rows are unit vectors ``[N, D]`` (float32) labelled with int64 item ids (the SQLite row ids). Three kinds:

* ``flat`` — exact cosine scores, stored as faiss ``IDMap,Flat`` and scored over that storage by a BLAS product or
  faiss's SIMD scan, whichever this machine runs faster (:mod:`.exact`). Chosen while ``N · D ≤ flat_max_cells``,
  and by an automatic build whenever the approximate structure it tried misses the recall target or is not
  faster (below).
* ``hnsw`` — an HNSW graph over a PCA-reduced copy of the rows, whose candidates (``refine_factor × k``) are
  re-ranked exactly against the full vectors (faiss ``PCA{d},HNSW{M},SQfp16,RFlat``). The graph works in the
  dimensions that hold ``reduce_variance`` of the variance, which pays off only where the rows have a low
  intrinsic dimension (synthetic sets built that way). When the reduction would keep more than half the
  dimensions, the graph is built on the full rows (``HNSW{M},SQfp16``) and needs no re-ranking — the case for
  real sentence embeddings (all-MiniLM-L6-v2 needs 237 of 384 dimensions for 95 % of the variance) and random
  vectors. The graph holds its rows in fp16 (``hnsw_rows``; fp32 on request) and in walk order (:mod:`.layout`):
  both cut the memory a search touches, which is what bounds it from ~100k rows on.
* ``ivfpq`` — inverted lists over product-quantised codes (``IVF{nlist},PQ{m}x{bits}``): for sets too large to
  keep every full vector in memory (from ``ivfpq_min`` rows on). Scores are approximate.

The graph and the lists search in L2, which ranks unit vectors exactly as cosine does and is unchanged by
PCA's centring (inner products are not); L2 distances are turned back into cosines (``1 − d²/2``). During a
build, the search breadth (HNSW ``efSearch`` or IVF ``nprobe``) is tuned (:mod:`.tuning`) to the smallest value
whose recall@10 reaches ``target_recall`` on rows held out of the index — one set to tune, a second to verify —
which are added once the breadth is set; an explicit ``ef_search`` / ``nprobe`` skips the tuning. An automatic
build (``kind="auto"``) keeps the structure only when some breadth passes both sets and its one-query search is
faster than the exact scan, measured side by side on the verification queries; otherwise it becomes ``flat``
(random unit vectors, or sizes where a BLAS scan is quicker). A forced kind is kept at its widest breadth. Every
setting is stored inside the faiss file.

Speed figures live in ``tools/bench_index.py`` and the README, with their data and operating point.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..config import from_dict, to_dict
from ..errors import ConfigError
from ..io import atomic_path
from .errors import IndexCorruptError
from .exact import FEATURE, exact_search, faiss
from .layout import index_chain, lay_out_graph
from .tuning import RECALL_K, Tuned, exact_is_faster, held_truth, tune_breadth

KINDS = ("auto", "flat", "hnsw", "ivfpq")

EF_SEARCH_STEPS = (16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384, 448, 512, 640, 768,
                   896, 1024)
"""The efSearch values the tuning tries, ~1.15–1.25× apart: the breadth it settles on costs at most that much
more per query than the target needs."""
ADD_CHUNK = 65536
"""Rows added per faiss call during a build (the progress callback fires between chunks)."""
PCA_ROWS_PER_DIM = 10
MIN_TUNE_QUERIES = 20
HNSW_ROWS = {"fp32": "Flat", "fp16": "SQfp16"}
"""How an HNSW graph stores the rows it compares a query with (``IndexSpec.hnsw_rows``): the faiss storage each
name builds. fp16 halves the bytes a search reads per visited node; its scores are within 5e-4 of the exact
cosine (a unit row's components rounded to 11 significant bits), which leaves recall@10 unchanged."""


@dataclass
class IndexSpec:
    """How the vector index is chosen and built; every field has the default the benchmark was tuned with."""

    kind: str = "auto"
    """"auto" (by size, below), or force "flat", "hnsw" or "ivfpq"."""
    flat_max_cells: int = 2_000_000
    """auto: exact search while rows × dim ≤ this (~5k rows of 384-d); above it a graph is built and kept only if it
    beats the exact scan (``tools/bench_index.py --sizes 21000 --data real``: graph 0.30 ms at recall 0.983, the
    scan 32–59 ms on a busy 2-core box)."""
    ivfpq_min: int = 5_000_000
    """auto: IVF-PQ from this many rows on (HNSW keeps every full vector in memory: ~2.3 kB a row at 512-d)."""
    hnsw_m: int = 32
    hnsw_rows: str = "fp16"
    """Row storage of the graph, a key of :data:`HNSW_ROWS`: "fp16" (half the memory and memory traffic: faiss's
    graph on 100k MiniLM-like rows searched 1.2–1.4× faster at unchanged recall and built 1.4× faster,
    ``tools/bench_index.py --peers hnsw:100,hnswfp16:100``) or "fp32" (scores exact to float rounding). Under PCA
    the re-ranking is exact either way."""
    ef_construction: int = 100
    """HNSW build breadth (faiss's usual is 40): on 21k real MiniLM rows 100 reached recall 0.983 against 0.979 at
    efSearch 48 for 1.2× the build (``tools/bench_index.py --sizes 21000 --data real --hnsw-efc 40,100``)."""
    ef_search: int = 0
    """HNSW search breadth; 0: tuned after each build to reach ``target_recall``."""
    refine_factor: int = 4
    """HNSW over reduced rows: re-rank this many × k candidates against the full vectors."""
    reduce_variance: float = 0.95
    """HNSW: PCA keeps the fewest dimensions (a multiple of 8, ≥ ``min_reduced_dim``) holding this much variance."""
    min_reduced_dim: int = 32
    nprobe: int = 0
    """IVF lists visited per query; 0: tuned after each build."""
    pq_bytes: int = 64
    """IVF-PQ code size per row (sub-quantisers; the largest divisor of the dimension not above this)."""
    target_recall: float = 0.97
    """Self-query recall@10 the tuning aims for (a margin above 0.95 for queries from other modalities)."""
    tune_queries: int = 256
    train_sample: int = 100_000
    """Rows sampled to fit PCA and IVF/PQ codebooks."""
    rebuild_growth: float = 2.0
    """An incremental add rebuilds (re-trains, re-tunes) once the row count reaches this × the count at the last
    build, so a structure trained on few rows never serves many."""
    seed: int = 0

    def validate(self) -> "IndexSpec":
        if self.kind not in KINDS:
            raise ConfigError(f"index kind '{self.kind}' is not one of {', '.join(KINDS)}")
        if self.hnsw_rows not in HNSW_ROWS:
            raise ConfigError(f"index spec: hnsw_rows '{self.hnsw_rows}' is not one of {', '.join(HNSW_ROWS)}")
        for key in ("flat_max_cells", "ivfpq_min", "hnsw_m", "ef_construction", "refine_factor", "min_reduced_dim",
                    "pq_bytes", "tune_queries", "train_sample"):
            if getattr(self, key) < 1:
                raise ConfigError(f"index spec: {key} must be ≥ 1, got {getattr(self, key)}")
        if not 0.0 < self.reduce_variance <= 1.0 or not 0.0 < self.target_recall <= 1.0:
            raise ConfigError("index spec: reduce_variance and target_recall must lie in (0, 1]")
        if self.ef_search < 0 or self.nprobe < 0 or self.rebuild_growth <= 1.0:
            raise ConfigError("index spec: ef_search and nprobe must be ≥ 0 and rebuild_growth > 1")
        return self

    def to_dict(self) -> dict:
        return to_dict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "IndexSpec":
        return from_dict(cls, data, "index spec").validate()


def choose_kind(count: int, dim: int, spec: IndexSpec) -> str:
    """The index kind for ``count`` rows of ``dim`` dimensions."""
    if spec.kind != "auto":
        return spec.kind
    if count * dim <= spec.flat_max_cells:
        return "flat"
    return "hnsw" if count < spec.ivfpq_min else "ivfpq"


class VectorIndex:
    """A faiss index over unit rows labelled with item ids, with the kind it was built as."""

    def __init__(self, index: faiss.Index, kind: str, reason: str = ""):
        self.index = index
        self.kind = kind
        self.reason = reason
        """Why an automatic build chose this kind over the one the size called for ("" when it did not)."""
        self._flat_views: tuple[np.ndarray, np.ndarray] | None = None

    @property
    def count(self) -> int:
        return int(self.index.ntotal)

    @property
    def dim(self) -> int:
        return int(self.index.d)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Queries: unit rows [Q, D] → (cosine scores [Q, k'], ids [Q, k']), k' = min(k, count), best first.

        A flat index scores over faiss's own storage (no copy, :mod:`.exact`); an IVF index may find fewer
        than k' rows for a query (its lists too short): those slots hold id −1.
        """
        k = min(k, self.count)
        if k == 0:
            return np.zeros((len(queries), 0), np.float32), np.zeros((len(queries), 0), np.int64)
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        if self.kind == "flat":
            rows, labels = self._flat_rows()
            scores, found = exact_search(rows, queries, k)
            return scores, labels[found]
        threads = faiss.omp_get_max_threads()
        # one or a few queries: OpenMP's fork/join would cost more than it saves (16 ms on a busy 2-core box)
        faiss.omp_set_num_threads(1 if len(queries) < 8 else threads)
        try:
            distances, ids = self.index.search(queries, k)
        finally:
            faiss.omp_set_num_threads(threads)
        if self.index.metric_type == faiss.METRIC_L2:  # ‖x − q‖² = 2 − 2 cos for unit x, q
            distances *= -0.5
            distances += 1.0
        return distances, ids

    def _flat_rows(self) -> tuple[np.ndarray, np.ndarray]:
        """Views (no copy) of a flat index's rows [N, D] float32 and their item ids [N] int64; dropped by every add
        and remove, which may move faiss's buffers."""
        if self._flat_views is None:
            flat = faiss.downcast_index(self.index.index)
            n = self.count
            self._flat_views = (faiss.rev_swig_ptr(flat.get_xb(), n * self.dim).reshape(n, self.dim),
                                faiss.rev_swig_ptr(self.index.id_map.data(), n))
        return self._flat_views

    def set_breadth(self, param: str, value: int) -> None:
        """Set the search breadth ``param`` (HNSW ``efSearch`` or IVF ``nprobe``) everywhere in the chain."""
        faiss.ParameterSpace().set_index_parameter(self.index, param, value)

    def add(self, vectors: np.ndarray, ids: np.ndarray, progress: Callable[[int], None] | None = None,
            keep: np.ndarray | None = None) -> None:
        """Add unit rows [N, D] labelled ``ids`` [N] (int64), ``ADD_CHUNK`` rows per call; with ``keep`` [N] (bool)
        only those rows (selected chunk by chunk, so no copy of the whole array is made)."""
        self._flat_views = None
        for start in range(0, len(vectors), ADD_CHUNK):
            stop = min(start + ADD_CHUNK, len(vectors))
            rows, labels = vectors[start:stop], ids[start:stop]
            if keep is not None:
                rows, labels = rows[keep[start:stop]], labels[keep[start:stop]]
            self.index.add_with_ids(np.ascontiguousarray(rows, dtype=np.float32),
                                    np.ascontiguousarray(labels, dtype=np.int64))
            if progress is not None:
                progress(len(rows))

    def can_remove(self) -> bool:
        """Flat and IVF indexes delete rows in place; an HNSW graph cannot (it is rebuilt instead)."""
        return self.kind != "hnsw"

    def remove(self, ids: np.ndarray) -> int:
        if not self.can_remove():
            raise ConfigError(f"a {self.kind} index cannot remove rows in place; rebuild it")
        self._flat_views = None
        return int(self.index.remove_ids(np.ascontiguousarray(ids, dtype=np.int64)))

    def describe(self) -> str:
        """One line: the kind, size and settings, e.g. ``hnsw: 1000000 × 512, re-rank ×4 on full vectors,
        PCA 512→32, HNSW M 32 over fp16 rows, efSearch 192``."""
        parts = [f"{self.count} × {self.dim}"]
        for sub in index_chain(self.index):
            if isinstance(sub, faiss.IndexPreTransform):
                vt = faiss.downcast_VectorTransform(sub.chain.at(0))
                parts.append(f"PCA {vt.d_in}→{vt.d_out}")
            elif isinstance(sub, faiss.IndexHNSW):
                rows = "fp16" if isinstance(sub, faiss.IndexHNSWSQ) else "fp32"
                parts.append(f"HNSW M {sub.hnsw.nb_neighbors(1)} over {rows} rows, efSearch {sub.hnsw.efSearch}")
            elif isinstance(sub, faiss.IndexRefine):
                parts.append(f"re-rank ×{int(sub.k_factor)} on full vectors")
            elif isinstance(sub, faiss.IndexIVFPQ):
                parts.append(f"IVF {sub.nlist} lists, nprobe {sub.nprobe}, PQ {sub.pq.M}×{sub.pq.nbits} bit")
        return f"{self.kind}: " + ", ".join(parts) + (f" ({self.reason})" if self.reason else "")

    def write(self, path: str | os.PathLike) -> None:
        """Write the index atomically (a temp file beside ``path``, renamed over it)."""
        with atomic_path(path) as tmp:
            faiss.write_index(self.index, str(tmp))

    @classmethod
    def read(cls, path: str | os.PathLike, kind: str, reason: str = "") -> "VectorIndex":
        """The index written at ``path``, built as ``kind`` (``reason``: why an automatic build chose it)."""
        try:
            return cls(faiss.read_index(str(path)), kind, reason)
        except RuntimeError as exc:
            raise IndexCorruptError(str(path), f"cannot read the faiss index ({str(exc).splitlines()[0]})") from exc


def build(vectors: np.ndarray, ids: np.ndarray, spec: IndexSpec, dim: int,
          progress: Callable[[int], None] | None = None, held_out: bool = True) -> VectorIndex:
    """Train, fill and tune the index ``spec`` chooses for unit rows ``vectors`` [N, dim] labelled ``ids`` [N];
    a graph's rows are then laid out in walk order (:mod:`.layout`).

    An automatic choice falls back to exact search when the tuned structure misses ``target_recall`` on held-out
    rows at every breadth, or when it searches no faster than the exact scan (:mod:`.tuning`). Without
    ``held_out`` — an index with sample queries of its own, which :func:`tune_to_queries` tunes and judges instead
    — the structure holds every row at its widest breadth (or the spec's fixed one), neither tuned nor judged here.
    """
    kind = choose_kind(len(vectors), dim, spec)
    if kind == "flat":
        return _flat(vectors, ids, dim, progress)
    sample = _training_sample(vectors, spec)
    index = faiss.index_factory(dim, f"IDMap,{_approximate_body(kind, sample, len(vectors), dim, spec)}",
                                faiss.METRIC_L2)
    for sub in index_chain(index):
        if isinstance(sub, faiss.IndexHNSW):
            sub.hnsw.efConstruction = spec.ef_construction
        if isinstance(sub, faiss.IndexRefine):
            sub.k_factor = float(spec.refine_factor)
    if not index.is_trained:
        index.train(sample)
    result = VectorIndex(index, kind)
    param, steps = breadth_steps(result)
    fixed = spec.ef_search if kind == "hnsw" else spec.nprobe
    n_queries = min(spec.tune_queries, len(vectors) // 20) if held_out and not fixed else 0
    if n_queries < MIN_TUNE_QUERIES:  # fixed, or too few rows to measure recall: widest is exhaustive at this size
        result.add(vectors, ids, progress)
        result.set_breadth(param, fixed or steps[-1])
        lay_out_graph(result.index)
        return result
    rng = np.random.default_rng(spec.seed + 1)
    picked = rng.choice(len(vectors), 2 * n_queries, replace=False)
    held = np.zeros(len(vectors), bool)
    held[picked] = True
    result.add(vectors, ids, progress, keep=~held)
    rows = np.ascontiguousarray(vectors, dtype=np.float32)
    sets = []
    for part in (picked[:n_queries], picked[n_queries:]):
        queries = rows[part]
        sets.append((queries, held_truth(rows, ids, held, queries)))
    tuned = tune_breadth(result, param, steps, spec.target_recall, sets[0], sets[1])
    reason = _exact_reason(result, tuned, spec.target_recall, rows, sets[1][0], "held-out rows") \
        if spec.kind == "auto" else ""
    if reason:
        del result, index
        flat = _flat(vectors, ids, dim, None, reason)  # the abandoned structure reported all but the held rows
        if progress is not None:
            progress(int(held.sum()))
        return flat
    result.set_breadth(param, tuned.value or steps[-1])
    result.add(vectors[held], ids[held], progress)
    lay_out_graph(result.index)
    return result


def tune_to_queries(vindex: VectorIndex, vectors: np.ndarray, ids: np.ndarray, queries: np.ndarray,
                    target: float, auto: bool) -> tuple[VectorIndex, Tuned]:
    """Set an approximate ``vindex``'s search breadth from sample ``queries`` [Q, D] (unit rows) of the kind it will
    serve — another modality's embeddings, say, or real queries where the rows are not — instead of rows held out
    of it: their exact top-10 among ``vectors`` [N, D] (the rows ``vindex`` holds, labelled ``ids`` [N]) is the
    truth; the first half picks the smallest breadth reaching ``target`` recall@10, the second verifies it.

    Where no breadth passes, ``auto`` (an automatic build) turns the rows into a flat index, as a build does, and
    also where the tuned search is no faster than the exact scan; otherwise the widest breadth stays. Returns the
    index and what the tuning measured.
    """
    param, steps = breadth_steps(vindex)
    rows = np.ascontiguousarray(vectors, dtype=np.float32)
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    truth = ids[exact_search(rows, queries, min(RECALL_K, len(rows)))[1]]
    half = len(queries) // 2
    tuned = tune_breadth(vindex, param, steps, target, (queries[:half], truth[:half]),
                         (queries[half:], truth[half:]))
    reason = _exact_reason(vindex, tuned, target, rows, queries[half:], "the tuning queries") if auto else ""
    if reason:
        return _flat(rows, ids, vindex.dim, None, reason), tuned
    vindex.set_breadth(param, tuned.value or steps[-1])
    return vindex, tuned


def breadth_steps(vindex: VectorIndex) -> tuple[str, tuple[int, ...]]:
    """The search-breadth parameter of an approximate index (HNSW ``efSearch``, IVF ``nprobe``) and the values the
    tuning tries, narrowest first."""
    if vindex.kind == "hnsw":
        return "efSearch", EF_SEARCH_STEPS
    nlist = faiss.extract_index_ivf(vindex.index).nlist
    return "nprobe", tuple(p for p in (1 << i for i in range(16)) if p <= nlist)


def _exact_reason(vindex: VectorIndex, tuned: Tuned, target: float, rows: np.ndarray, timing: np.ndarray,
                  where: str) -> str:
    """Why an automatic build serves exact search instead of the tuned ``vindex`` ("" when it keeps it): no breadth
    reached ``target`` on the queries ``where`` names, or the tuned search of the ``timing`` queries [Q, D] was no
    faster than a scan of ``rows`` [N, D]."""
    param, steps = breadth_steps(vindex)
    if tuned.value is None:
        return (f"exact: {vindex.kind} reached recall@10 {tuned.tune_recall:.3f} / {tuned.verify_recall:.3f} on the "
                f"halves of {where} at {param} {steps[-1]}, not {target} by a standard error's margin")
    vindex.set_breadth(param, tuned.value)
    faster, graph_ms, exact_ms = exact_is_faster(vindex, rows, timing)
    if faster:
        return f"exact: {exact_ms:.2f} ms per query against {vindex.kind} {param} {tuned.value}'s {graph_ms:.2f} ms"
    return ""


def _flat(vectors: np.ndarray, ids: np.ndarray, dim: int, progress: Callable[[int], None] | None,
          reason: str = "") -> VectorIndex:
    result = VectorIndex(faiss.index_factory(dim, "IDMap,Flat", faiss.METRIC_INNER_PRODUCT), "flat", reason)
    result.add(vectors, ids, progress)
    return result


def _approximate_body(kind: str, sample: np.ndarray, count: int, dim: int, spec: IndexSpec) -> str:
    """The faiss factory string after ``IDMap,`` for an ``hnsw`` or ``ivfpq`` index."""
    if kind == "ivfpq":
        return _ivfpq_body(count, len(sample), dim, spec)
    reduced = reduced_dim(sample, spec)
    # a PCA fitted on fewer than ~10 rows per kept dimension is noise; so few rows need no reduction anyway
    use_pca = reduced * 2 <= dim and len(sample) >= PCA_ROWS_PER_DIM * reduced
    graph = f"HNSW{spec.hnsw_m},{HNSW_ROWS[spec.hnsw_rows]}"
    return f"PCA{reduced},{graph},RFlat" if use_pca else graph


def reduced_dim(sample: np.ndarray, spec: IndexSpec) -> int:
    """The fewest dimensions (a multiple of 8, at least ``min_reduced_dim``) holding ``reduce_variance`` of the
    sample's variance (eigenvalues of its covariance)."""
    dim = sample.shape[1]
    centred = sample - sample.mean(axis=0, dtype=np.float64).astype(np.float32)
    eigenvalues = np.linalg.eigvalsh((centred.T @ centred).astype(np.float64))[::-1]  # float32 GEMM: 4× faster
    total = eigenvalues.sum()
    if total <= 0:
        return min(dim, spec.min_reduced_dim)
    needed = int(np.searchsorted(np.cumsum(eigenvalues) / total, spec.reduce_variance - 1e-12)) + 1
    return min(dim, max(spec.min_reduced_dim, 8 * math.ceil(needed / 8)))


def _ivfpq_body(count: int, n_train: int, dim: int, spec: IndexSpec) -> str:
    """``IVF{nlist}[_HNSW32],PQ{m}x{bits}``: ~4·√N lists with ≥ 39 training rows each (faiss's minimum for a
    stable k-means); ``m`` the largest divisor of ``dim`` ≤ ``pq_bytes`` with ≥ 4 dimensions per sub-quantiser
    (k-means on fewer is slow and poor); 8-bit codes when the sample has ≥ 39 rows per code, fewer bits otherwise."""
    nlist = 1 << max(0, round(math.log2(4 * math.sqrt(max(count, 1)))))
    nlist = max(1, min(nlist, n_train // 39))
    m = max(d for d in range(1, max(1, min(spec.pq_bytes, dim // 4)) + 1) if dim % d == 0)
    bits = max(1, min(8, int(math.log2(max(n_train // 39, 2)))))
    quantizer = "_HNSW32" if nlist >= 4096 else ""
    return f"IVF{nlist}{quantizer},PQ{m}x{bits}"


def _training_sample(vectors: np.ndarray, spec: IndexSpec) -> np.ndarray:
    if len(vectors) <= spec.train_sample:
        return np.ascontiguousarray(vectors, dtype=np.float32)
    rows = np.random.default_rng(spec.seed).choice(len(vectors), spec.train_sample, replace=False)
    return np.ascontiguousarray(vectors[np.sort(rows)], dtype=np.float32)
