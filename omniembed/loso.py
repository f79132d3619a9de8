"""Leave-one-source-out on OmniDigits: train without source X, score X — whole sources held out, never samples.

For each fold — one held-out source X (an image source such as ``fonts``, an audio source such as
``espeak-ng-whisper``, a point-cloud recipe such as ``lift-deep``;
:data:`~omniembed.datasets.omnidigits_pools.KIND_OF_SOURCE`), or several held out together:

1. build OmniDigits with the fold's sources left out of the train split (:func:`~omniembed.datasets.build_omnidigits`'s
   ``exclude``); the test split keeps every source and is the same for every fold;
2. train as the demo does: the image–text anchor, then audio, video and point clouds bound to it. Only a fold
   holding out an image source trains its own anchor: the anchor sees images and captions only, so for a fold of
   audio and point-cloud sources the anchor of the full build (which never saw any audio or cloud) is reused;
3. score each held-out source on the full build's test split: its zero-shot top-1, and for an image source the
   top-1 class match of retrieval from audio and from point clouds into its images.

*Grouped* folds hold out one source of each kind at once (fold k: the k-th image source, the k-th audio source, the
k-th lifting recipe), so every source is held out once in as many trainings as the kind with the most sources has
(6 instead of 14 for ``all``). Each source is still scored only by a model that never saw it; the figures are, if
anything, lower than one-source folds give, as each fold's model also misses a source of the other kinds.

Out-of-source for a kind is the mean of the held-out sources' zero-shot over the folds; in-source is, for the gap,
the same fold model's zero-shot on the sources of that kind it was trained on (their mean). Writes
``OUT/loso.json`` and ``OUT/loso.md`` (one table, with the means); every fold's model and report stay in
``OUT/loso/<source>[+<source>…]/`` and finished stages are reused, as in the demo.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from .demo import DemoConfig, build_data, check_sizes, evaluate_model, train_stage
from .errors import ConfigError

RETRIEVAL_INTO_IMAGES = ("audio→image", "pointcloud→image")
"""The pairs scored into a held-out image source's images (top-1 class match = R@1 with same-class positives)."""
KINDS = ("image", "audio", "pointcloud")


@dataclass
class LosoFold:
    """One held-out source's figures (None where a figure does not apply to its kind)."""

    source: str
    kind: str
    out_of_source: float
    """The held-out source's zero-shot top-1 (its own modality), trained without it."""
    in_source: float | None
    """The same model's zero-shot on the other sources of the kind (trained on), their mean; None when none."""
    retrieval_into: dict[str, float] = field(default_factory=dict)
    """For an image source: "audio→image" / "pointcloud→image" → R@1 into its test images, trained without it."""
    seconds: float = 0.0
    """The fold's training and scoring time (shared by the sources held out together)."""
    held_with: list[str] = field(default_factory=list)
    """The other sources the same fold held out."""


def parse_folds(held_out: list[str]) -> list[tuple[str, ...]]:
    """``--leave-out`` entries → folds: each entry one fold, its sources joined by ``+``."""
    return [tuple(part for part in entry.split("+") if part) for entry in held_out]


def holds_image(fold: tuple[str, ...]) -> bool:
    """Whether the fold holds out an image source (and so trains its own anchor)."""
    from .datasets.omnidigits_pools import KIND_OF_SOURCE

    return any(KIND_OF_SOURCE[s] == "image" for s in fold)


def plan_folds(names: dict[str, list[str]], held_out: list[str] | None = None,
               grouped: bool = False) -> list[tuple[str, ...]]:
    """The folds to train: each a tuple of sources held out together.

    ``names`` is the build's {kind: source names}. ``held_out`` entries name one fold each, several sources joined
    by ``+`` (``"mnist+fsdd"``); without it every source of the build is held out, alone, or with ``grouped`` one
    source of each kind per fold. :class:`ConfigError` for a source the build lacks or one named twice."""
    available = [s for kind in KINDS for s in names.get(kind, [])]
    if held_out:
        folds = parse_folds(held_out)
    elif grouped:
        columns = itertools.zip_longest(*(names.get(kind, []) for kind in KINDS))
        folds = [tuple(s for s in column if s is not None) for column in columns]
    else:
        folds = [(s,) for s in available]
    named = [s for fold in folds for s in fold]
    missing = [s for s in named if s not in available]
    if missing:
        raise ConfigError(f"loso: {', '.join(missing)} is not a source of this build ({', '.join(available)})")
    twice = sorted({s for s in named if named.count(s) > 1})
    if twice or any(not fold for fold in folds):
        raise ConfigError(f"loso: every fold needs its own sources; {', '.join(twice) or 'an empty fold'} "
                          f"given twice or empty in {', '.join('+'.join(f) for f in folds)}")
    return folds


def run_loso(config: DemoConfig, held_out: list[str] | None = None, grouped: bool = False,
             log: Callable[[str], None] = print) -> dict:
    """Train once per fold without its sources and score them (:func:`plan_folds`: ``held_out`` entries, or every
    source of the build, alone or ``grouped``). Returns the summary also written to ``OUT/loso.json`` (and
    ``OUT/loso.md``)."""
    from .datasets.omnidigits import load_manifest
    from .datasets.omnidigits_pools import KIND_OF_SOURCE, check_source_names

    check_sizes(config)
    check_source_names([s for fold in parse_folds(held_out or []) for s in fold])
    out = Path(config.out)
    log("== data (every source)")
    data_dir = build_data(config, out / "data", log)
    folds = plan_folds(load_manifest(data_dir).source_names, held_out, grouped)
    anchor = None
    if not all(holds_image(fold) for fold in folds):
        log("== anchor on every source (shared by the folds without an image source)")
        anchor = train_stage(config.anchor_recipe, config.anchor_steps, config, data_dir, out / "anchor")
    figures = []
    for fold in folds:
        name = "+".join(fold)
        log(f"== leave out {name}")
        t0 = time.perf_counter()
        report = _fold(config, fold, anchor, data_dir, out / "loso" / name, log)
        seconds = time.perf_counter() - t0
        for source in fold:
            figures.append(fold_figures(source, KIND_OF_SOURCE[source], report, seconds, fold))
            log(f"   {source}: zero-shot {figures[-1].out_of_source:.1%} held out"
                + (f" (in-source {figures[-1].in_source:.1%})" if figures[-1].in_source is not None else ""))
    summary = summarise(figures, config)
    _write(out, summary)
    log(f"\nleave-one-source-out table: {out / 'loso.md'}\n" + markdown(summary))
    return summary


def _fold(config: DemoConfig, fold: tuple[str, ...], full_anchor: Path | None, test_data: Path, fold_dir: Path,
          log: Callable[[str], None]) -> dict:
    data_dir = build_data(config, fold_dir / "data", log, exclude=fold)
    anchor = (train_stage(config.anchor_recipe, config.anchor_steps, config, data_dir, fold_dir / "anchor")
              if holds_image(fold) else full_anchor)
    model = train_stage(config.recipe, config.steps, config, data_dir, fold_dir / "run", [f"model.init={anchor}"])
    return evaluate_model(model, test_data, fold_dir / "report", show=False)


def fold_figures(source: str, kind: str, report: dict, seconds: float = 0.0,
                 fold: tuple[str, ...] = ()) -> LosoFold:
    """A held-out source's figures from its fold's eval report (as :meth:`~omniembed.eval.EvalReport.as_dict`);
    ``fold``: every source that fold held out (``source`` included or not), none of which counts as in-source."""
    by_source = report.get("zero_shot_by_source", {}).get(kind, {})
    if source not in by_source:
        raise ConfigError(f"loso: the test split has no {kind} input from {source} to score")
    held = {source, *fold}
    others = [r["top1"] for name, r in by_source.items() if name not in held]
    into = {}
    if kind == "image":
        for pair in RETRIEVAL_INTO_IMAGES:
            entry = report.get("retrieval_by_source", {}).get(pair, {}).get("target", {}).get(source)
            if entry is not None:
                into[pair] = entry["R@1"]
    return LosoFold(source, kind, by_source[source]["top1"], float(np.mean(others)) if others else None, into,
                    round(seconds, 1), [s for s in fold if s != source])


def summarise(folds: list[LosoFold], config: DemoConfig) -> dict:
    """The folds and, per kind, the mean over its held-out sources (out-of-source) and their in-source mean."""
    means: dict[str, float] = {}
    for kind in KINDS:
        rows = [f for f in folds if f.kind == kind]
        if rows:
            means[f"{kind} zero-shot"] = float(np.mean([f.out_of_source for f in rows]))
            if all(f.in_source is not None for f in rows):
                means[f"{kind} zero-shot, in-source"] = float(np.mean([f.in_source for f in rows]))
    for pair in RETRIEVAL_INTO_IMAGES:
        values = [f.retrieval_into[pair] for f in folds if pair in f.retrieval_into]
        if values:
            means[f"{pair} into held-out images, top-1 class match"] = float(np.mean(values))
    sizes = {k: getattr(config, k) for k in ("n_train", "n_test", "anchor_steps", "steps", "batch_size", "seed")}
    return {"sizes": sizes, "source": config.source, "overrides": list(config.overrides),
            "folds": [vars(f) for f in folds], "mean_out_of_source": means}


def markdown(summary: dict) -> str:
    """The leave-one-source-out table: one row per held-out source, then the means."""
    lines = ["## Leave-one-source-out (zero-shot top-1 on the held-out source; trained without it)", "",
             "| held-out source | kind | out-of-source | in-source (its other sources) | audio→image into it | "
             "pointcloud→image into it |", "|---|---|---|---|---|---|"]
    for f in summary["folds"]:
        into = [f["retrieval_into"].get(p) for p in RETRIEVAL_INTO_IMAGES]
        source = f"{f['source']} (with {', '.join(f['held_with'])})" if f.get("held_with") else f["source"]
        lines.append(f"| {source} | {f['kind']} | {f['out_of_source']:.1%} | {_pct(f['in_source'])} | "
                     f"{_pct(into[0])} | {_pct(into[1])} |")
    lines += ["", "| mean over held-out sources | |", "|---|---|"]
    lines += [f"| {name} | {value:.1%} |" for name, value in summary["mean_out_of_source"].items()]
    sizes = ", ".join(f"{k} {v}" for k, v in summary["sizes"].items())
    return "\n".join(lines + ["", f"Sizes: {sizes}; sources: {summary['source']}."]) + "\n"


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.1%}"


def _write(out: Path, summary: dict) -> None:
    from .io import atomic_path, write_json

    write_json(out / "loso.json", summary)
    with atomic_path(out / "loso.md") as tmp:
        tmp.write_text(markdown(summary), encoding="utf-8")
