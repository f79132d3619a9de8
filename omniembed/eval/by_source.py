"""Scores grouped by where the inputs came from: zero-shot per (modality, source), retrieval into each target source
and from each query source. What shows whether zero-shot holds on data from a source the model never saw.

A source is any name a test set tags its files with (OmniDigits writes ``STEM.src``: ``{"image": "fonts",
"pointcloud": "lift-deep", …}``); inputs without one are grouped under :data:`UNTAGGED`.
"""

from __future__ import annotations

import numpy as np

from .retrieval import recall_at_k, same_label
from .zeroshot import classify

UNTAGGED = "(untagged)"


def zero_shot_by_source(embeddings: np.ndarray, labels: np.ndarray, sources: list[str],
                        classifier: np.ndarray) -> dict[str, dict[str, float]]:
    """Unit rows ``[N, E]``, class indices ``[N]``, one source name per row, class vectors ``[C, E]`` →
    {source: {"top1", "top5", "mean_per_class_recall", "n"}}, sources in name order."""
    groups = _groups(sources)
    return {name: {**classify(embeddings[rows], labels[rows], classifier).as_dict(), "n": float(len(rows))}
            for name, rows in groups.items()}


def retrieval_by_source(queries: np.ndarray, query_labels: np.ndarray, query_sources: list[str] | None,
                        targets: np.ndarray, target_labels: np.ndarray,
                        target_sources: list[str] | None) -> dict[str, dict[str, dict[str, float]]]:
    """Class-match recall@k (positives: same class) of one ordered pair, ``queries [Q, E]`` into ``targets [T, E]``:

    * ``"target"`` — {source: every query into only that source's targets} (e.g. audio → the held-out source's
      images: the top-1 class match of retrieval into a source);
    * ``"query"`` — {source: only that source's queries into every target}.

    A side without sources (``None``) is left out. Each entry holds "R@1", "R@5", "R@10" and "n" (its rows).
    """
    out: dict[str, dict[str, dict[str, float]]] = {}
    if target_sources is not None:
        out["target"] = {name: {**recall_at_k(queries, targets[rows], same_label(query_labels, target_labels[rows])),
                                "n": float(len(rows))}
                         for name, rows in _groups(target_sources).items()}
    if query_sources is not None:
        out["query"] = {name: {**recall_at_k(queries[rows], targets, same_label(query_labels[rows], target_labels)),
                               "n": float(len(rows))}
                        for name, rows in _groups(query_sources).items()}
    return out


def _groups(sources: list[str]) -> dict[str, np.ndarray]:
    names = np.asarray([s or UNTAGGED for s in sources])
    return {name: np.flatnonzero(names == name) for name in sorted(set(names.tolist()))}


def markdown(zero_shot: dict[str, dict[str, dict[str, float]]],
             retrieval: dict[str, dict[str, dict[str, dict[str, float]]]]) -> list[str]:
    """The report's per-source sections (Markdown lines); none when no input carries a source."""
    if not zero_shot and not retrieval:
        return []
    lines = ["", "## Zero-shot by source", "", "| modality | source | n | top-1 | mean per-class recall |",
             "|---|---|---|---|---|"]
    for modality, by_source in zero_shot.items():
        for name, r in by_source.items():
            lines.append(f"| {modality} | {name} | {r['n']:.0f} | {r['top1']:.1%} | {r['mean_per_class_recall']:.1%} |")
    lines += ["", "## Retrieval into each target source (positives: same class)", "",
              "| query → target | target source | targets | R@1 | R@5 | R@10 |", "|---|---|---|---|---|---|"]
    for pair, sides in retrieval.items():
        for name, r in sides.get("target", {}).items():
            lines.append(f"| {pair} | {name} | {r['n']:.0f} | {r['R@1']:.1%} | {r['R@5']:.1%} | {r['R@10']:.1%} |")
    return lines
