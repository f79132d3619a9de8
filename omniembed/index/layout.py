"""Memory layout of an HNSW index: rows stored in the order a graph walk from the entry point meets them.

faiss stores graph nodes in insertion order, so the neighbours a search visits one after another sit anywhere in
a gigabyte of rows and links, and each costs a cache miss. Re-numbering the nodes in breadth-first order of the
bottom layer, starting at the entry point, puts a node's neighbours near it and near each other. The graph, and so
every search result, is unchanged; only where each row lives moves. Against faiss's graph over the same fp16
rows at the same efConstruction in insertion order, one-query search at the same efSearch was 1.05–1.10× faster
on 1M MiniLM-like rows and within the noise at 100k, where the graph's hot part fits the caches better
(``tools/bench_index.py --data real --peers hnswfp16:100 --sweep-ours``; README). Rows added to a built index are
appended; the next rebuild lays them out with the rest.
"""

from __future__ import annotations

import numpy as np

from .exact import faiss

WALK_CHUNK = 65536
"""Frontier nodes whose links one step of the walk reads at once (~32 MB of link indices at M 32)."""


def walk_order(hnsw: faiss.HNSW, count: int) -> np.ndarray:
    """Node numbers [count] (int64) in breadth-first order over ``hnsw``'s bottom layer from its entry point,
    each node's neighbours in the order the graph lists them; nodes the walk cannot reach follow in their own
    order."""
    width = hnsw.nb_neighbors(0)
    offsets = faiss.rev_swig_ptr(hnsw.offsets.data(), count + 1)
    links = faiss.rev_swig_ptr(hnsw.neighbors.data(), int(offsets[count]))
    seen = np.zeros(count, bool)
    order = []
    frontier = np.array([hnsw.entry_point], np.int64)
    seen[frontier] = True
    while len(frontier):
        order.append(frontier)
        following = []
        for start in range(0, len(frontier), WALK_CHUNK):  # bounded memory: a frontier may hold half the graph
            nodes = frontier[start:start + WALK_CHUNK]
            # bottom-layer links sit first in each node's slice of `links`; −1 marks an unused slot
            met = links[offsets[nodes].astype(np.int64)[:, None] + np.arange(width)].ravel()
            met = met[met >= 0]
            met = met[~seen[met]]
            _, first = np.unique(met, return_index=True)
            met = met[np.sort(first)].astype(np.int64)
            seen[met] = True
            following.append(met)
        frontier = np.concatenate(following)
    order.append(np.flatnonzero(~seen))
    return np.concatenate(order)


def lay_out_graph(index: faiss.Index) -> bool:
    """Re-number the nodes of the HNSW graph inside ``index`` (an ``IndexIDMap`` over a chain holding one
    ``IndexHNSW``, optionally under PCA and exact re-ranking) in :func:`walk_order`, moving every copy of the
    rows — the graph's storage, the re-ranking rows and the id map — with them. Returns False (and changes
    nothing) for an index without a graph."""
    chain = list(index_chain(index))
    graphs = [sub for sub in chain if isinstance(sub, faiss.IndexHNSW)]
    if not graphs or index.ntotal == 0:
        return False
    count = int(index.ntotal)
    order = walk_order(graphs[0].hnsw, count)
    graphs[0].permute_entries(order)
    for sub in chain:
        if isinstance(sub, faiss.IndexRefine):
            faiss.downcast_index(sub.refine_index).permute_entries(order)
    labels = faiss.rev_swig_ptr(faiss.downcast_index(index).id_map.data(), count)
    labels[:] = labels[order]
    return True


def index_chain(index: faiss.Index):
    """The index and every index it wraps (IDMap → refine → pre-transform → graph), downcast."""
    seen = faiss.downcast_index(index)
    while seen is not None:
        yield seen
        inner = seen.base_index if isinstance(seen, faiss.IndexRefine) else getattr(seen, "index", None)
        seen = faiss.downcast_index(inner) if isinstance(inner, faiss.Index) else None
