"""faiss peer indexes for ``tools/bench_index.py``: built from a factory string, or read back from an on-disk cache.

A 1M-row HNSW graph takes tens of minutes on a shared 2-core box, so ``--peer-cache DIR`` keeps each built peer as
``<factory>.efc<efConstruction>.<rows fingerprint>.faiss`` beside a ``.json`` holding the build time measured when
it was built. The fingerprint (sha1 of the shape and of every ``n // 4096``-th row) keys the file to the data, so a
different set, size or augmentation never reuses a stale graph. A cached peer reports that measured build time.
Memory is the index's serialised size (its vectors or codes, graph links and lists): the growth of the resident
set is no measure within one process, whose allocator reuses what the previous index freed.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

TRAIN_ROWS = 100_000
FINGERPRINT_ROWS = 4096


@dataclass
class BuiltPeer:
    index: faiss.Index
    build_s: float
    memory_mib: float
    cached: bool


def index_mib(index: faiss.Index) -> float:
    """What ``index`` holds, MiB: the size of its file (written to a temp file: serialising in memory would need a
    second copy of a 1.5 GB index)."""
    with tempfile.TemporaryDirectory() as tmp:
        faiss.write_index(index, os.path.join(tmp, "index.faiss"))
        return os.path.getsize(os.path.join(tmp, "index.faiss")) / 2**20


def fingerprint(rows: np.ndarray) -> str:
    """A short hash of rows [N, D]: their shape and every ``N // 4096``-th row."""
    digest = hashlib.sha1(repr(rows.shape).encode())
    digest.update(np.ascontiguousarray(rows[::max(1, len(rows) // FINGERPRINT_ROWS)]).tobytes())
    return digest.hexdigest()[:16]


def cache_path(cache: Path, factory: str, ef_construction: int, rows: np.ndarray) -> Path:
    slug = "".join(c if c.isalnum() else "_" for c in factory)
    return cache / f"{slug}.efc{ef_construction}.{fingerprint(rows)}.faiss"


def build_peer(factory: str, rows: np.ndarray, ef_construction: int = 40, cache: Path | None = None) -> BuiltPeer:
    """faiss ``factory`` over unit rows [N, D] in L2 (which ranks unit rows as cosine does), with every HNSW in it
    built at ``ef_construction``; read from ``cache`` when it holds this build of these rows, else built (IVF and
    SQ trained on up to 100k rows sampled with seed 0) and, with a ``cache``, written there atomically."""
    path = cache_path(cache, factory, ef_construction, rows) if cache is not None else None
    if path is not None and path.is_file() and path.with_suffix(".json").is_file():
        index = faiss.read_index(str(path))
        build_s = float(json.loads(path.with_suffix(".json").read_text())["build_s"])
        return BuiltPeer(index, build_s, path.stat().st_size / 2**20, cached=True)
    t0 = time.perf_counter()
    index = faiss.index_factory(rows.shape[1], factory, faiss.METRIC_L2)
    for sub in _chain(index):
        if isinstance(sub, faiss.IndexHNSW):
            sub.hnsw.efConstruction = ef_construction
    if not index.is_trained:
        picked = np.random.default_rng(0).choice(len(rows), min(len(rows), TRAIN_ROWS), replace=False)
        index.train(rows[np.sort(picked)])
    index.add(rows)
    build_s = time.perf_counter() - t0
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        faiss.write_index(index, str(tmp))
        tmp.replace(path)
        path.with_suffix(".json").write_text(json.dumps({"factory": factory, "efConstruction": ef_construction,
                                                         "rows": list(rows.shape), "build_s": build_s}))
    return BuiltPeer(index, build_s, index_mib(index), cached=False)


def _chain(index: faiss.Index):
    """The index and the indexes it wraps (refine → base, IVF → quantiser), downcast."""
    seen = faiss.downcast_index(index)
    yield seen
    if isinstance(seen, faiss.IndexRefine):
        yield from _chain(seen.base_index)
    elif isinstance(seen, faiss.IndexIVF):
        yield from _chain(seen.quantizer)
