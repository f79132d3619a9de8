"""Evaluate a model on a labelled multi-modal test set: zero-shot per modality, retrieval for every ordered pair."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Sequence

import numpy as np

from ..io import atomic_path, write_json
from . import by_source
from .retrieval import recall_at_k, same_label
from .zeroshot import DEFAULT_TEMPLATES, classify, text_classifier

if TYPE_CHECKING:
    from ..model import OmniEmbedModel


@dataclass
class EvalSet:
    """Per modality: input files and their class labels (rows need not be paired across modalities), and, where
    known, the source each input came from (``sources[modality]`` aligned with ``items[modality]``)."""

    items: dict[str, list[str]]
    labels: dict[str, np.ndarray]
    class_names: list[str]
    sources: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class EvalReport:
    zero_shot: dict[str, dict[str, float]] = field(default_factory=dict)
    retrieval: dict[str, dict[str, float]] = field(default_factory=dict)
    """"query→target" → {"R@1", "R@5", "R@10", "emergent": 0/1}."""
    failures: list[str] = field(default_factory=list)
    zero_shot_by_source: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    """modality → source → zero-shot scores and "n" (:func:`~.by_source.zero_shot_by_source`)."""
    retrieval_by_source: dict[str, dict[str, dict[str, dict[str, float]]]] = field(default_factory=dict)
    """"query→target" → "target" | "query" → source → recall@k and "n" (see
    :func:`~.by_source.retrieval_by_source`)."""

    def as_dict(self) -> dict:
        out = {"zero_shot": self.zero_shot, "retrieval": self.retrieval, "failures": self.failures}
        if self.zero_shot_by_source or self.retrieval_by_source:
            out.update(zero_shot_by_source=self.zero_shot_by_source, retrieval_by_source=self.retrieval_by_source)
        return out

    def markdown(self) -> str:
        lines = ["## Zero-shot classification by text prompts", "",
                 "| modality | top-1 | top-5 | mean per-class recall | emergent |", "|---|---|---|---|---|"]
        for m, r in self.zero_shot.items():
            lines.append(f"| {m} | {r['top1']:.1%} | {r['top5']:.1%} | {r['mean_per_class_recall']:.1%} | "
                         f"{'yes' if r.get('emergent') else 'no'} |")
        lines += ["", "## Cross-modal retrieval (positives: same class)", "",
                  "| query → target | R@1 | R@5 | R@10 | emergent |", "|---|---|---|---|---|"]
        for pair, r in self.retrieval.items():
            lines.append(f"| {pair} | {r['R@1']:.1%} | {r['R@5']:.1%} | {r['R@10']:.1%} | "
                         f"{'yes' if r['emergent'] else 'no'} |")
        lines += by_source.markdown(self.zero_shot_by_source, self.retrieval_by_source)
        if self.failures:
            lines += ["", f"{len(self.failures)} inputs could not be read:", *[f"- {f}" for f in self.failures[:20]]]
        return "\n".join(lines) + "\n"


def is_emergent(a: str, b: str, trained_pairs: Iterable[tuple[str, str]]) -> bool:
    """A pair is emergent when it was never trained together, in either order."""
    trained = {frozenset(p) for p in trained_pairs}
    return a != b and frozenset((a, b)) not in trained


def evaluate(model: "OmniEmbedModel", data: EvalSet, trained_pairs: Sequence[tuple[str, str]] = (),
             templates: Sequence[str] = DEFAULT_TEMPLATES, out_dir: str | Path | None = None,
             batch_size: int = 32, progress: bool | None = None) -> EvalReport:
    """Embed every modality's test items, then score zero-shot and all ordered retrieval pairs.

    When ``data`` names the inputs' sources, scores are also grouped by source (:mod:`.by_source`). Writes
    ``report.json``, ``report.md``, ``confusion.png``, ``joint_space.png`` (and ``by_source.png`` with sources) to
    ``out_dir`` when given.
    """
    report = EvalReport()
    embeddings: dict[str, np.ndarray] = {}
    labels: dict[str, np.ndarray] = {}
    sources: dict[str, list[str]] = {}
    for modality, items in data.items.items():
        if modality not in model.modalities or not items:
            continue
        rows, failures = model.embed(items, modality=modality, batch_size=batch_size, on_error="skip",
                                     progress=progress)
        bad = {f.index for f in failures}
        report.failures += [str(f) for f in failures]
        embeddings[modality] = rows
        labels[modality] = np.asarray([l for i, l in enumerate(data.labels[modality]) if i not in bad])
        if data.sources.get(modality):
            sources[modality] = [s for i, s in enumerate(data.sources[modality]) if i not in bad]

    confusions = {}
    prompt = model.prompt
    if prompt in model.modalities:
        classifier = text_classifier(model, data.class_names, templates)
        for modality, emb in embeddings.items():
            if modality == prompt:
                continue
            result = classify(emb, labels[modality], classifier)
            report.zero_shot[modality] = {**result.as_dict(),
                                          "emergent": float(is_emergent(modality, prompt, trained_pairs))}
            confusions[modality] = result.confusion
            if modality in sources:
                report.zero_shot_by_source[modality] = by_source.zero_shot_by_source(
                    emb, labels[modality], sources[modality], classifier)
    for a, b in itertools.permutations(embeddings, 2):
        scores = recall_at_k(embeddings[a], embeddings[b], same_label(labels[a], labels[b]))
        report.retrieval[f"{a}→{b}"] = {**scores, "emergent": float(is_emergent(a, b, trained_pairs))}
        if a in sources or b in sources:
            report.retrieval_by_source[f"{a}→{b}"] = by_source.retrieval_by_source(
                embeddings[a], labels[a], sources.get(a), embeddings[b], labels[b], sources.get(b))

    if out_dir is not None:
        write_report(report, Path(out_dir), confusions, embeddings, labels, data.class_names)
    return report


def write_report(report: EvalReport, out_dir: Path, confusions: dict[str, np.ndarray],
                 embeddings: dict[str, np.ndarray], labels: dict[str, np.ndarray], class_names: list[str]) -> None:
    from .plots import plot_confusions, plot_joint_space, plot_zero_shot_by_source

    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(out_dir / "report.json", report.as_dict())
    with atomic_path(out_dir / "report.md") as tmp:
        tmp.write_text(report.markdown())
    if confusions:
        plot_confusions(confusions, class_names, out_dir / "confusion.png")
    if embeddings:
        plot_joint_space(embeddings, labels, out_dir / "joint_space.png")
    if report.zero_shot_by_source:
        plot_zero_shot_by_source(report.zero_shot_by_source, out_dir / "by_source.png")
