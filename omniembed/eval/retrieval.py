"""Cross-modal retrieval metrics (CLIP_benchmark's recall@k: a query counts when any correct target is in its top k)."""

from __future__ import annotations

import numpy as np


def recall_at_k(queries: np.ndarray, targets: np.ndarray, positives: np.ndarray,
                ks: tuple[int, ...] = (1, 5, 10)) -> dict[str, float]:
    """queries [Q, E], targets [T, E] (unit rows), positives [Q, T] bool → {"R@k": share of queries}."""
    scores = queries @ targets.T
    k_max = min(max(ks), targets.shape[0])
    top = np.argpartition(-scores, k_max - 1, axis=1)[:, :k_max]
    order = np.take_along_axis(scores, top, axis=1).argsort(axis=1)[:, ::-1]
    top = np.take_along_axis(top, order, axis=1)
    hits = np.take_along_axis(positives, top, axis=1)
    return {f"R@{k}": float(hits[:, : min(k, k_max)].any(axis=1).mean()) for k in ks}


def same_label(query_labels: np.ndarray, target_labels: np.ndarray) -> np.ndarray:
    """positives[q, t] = the query and target share a class (retrieval by class, as for OmniDigits)."""
    return np.asarray(query_labels)[:, None] == np.asarray(target_labels)[None, :]
