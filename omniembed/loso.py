"""Leave-one-source-out on OmniDigits: train without source X, score X — whole sources held out, never samples.

For each held-out source X (an image source such as ``fonts``, an audio source such as ``espeak-ng-whisper``, a
point-cloud recipe such as ``lift-deep``; :data:`~omniembed.datasets.omnidigits_pools.KIND_OF_SOURCE`):

1. build OmniDigits with X left out of the train split (:func:`~omniembed.datasets.build_omnidigits`'s
   ``exclude``); the test split keeps every source and is the same for every fold;
2. train as the demo does: the image–text anchor, then audio, video and point clouds bound to it. Only a fold
   holding out an image source trains its own anchor: the anchor sees images and captions only, so for an audio
   or point-cloud fold the anchor of the full build (which never saw any audio or cloud) is reused;
3. score the held-out source on the full build's test split: its zero-shot top-1, and for an image source the
   top-1 class match of retrieval from audio and from point clouds into its images.

Out-of-source for a kind is the mean of the held-out sources' zero-shot over the folds of that kind; in-source is,
for the gap, the same fold model's zero-shot on the sources of that kind it was trained on (their mean). Writes
``OUT/loso.json`` and ``OUT/loso.md`` (one table, with the means); every fold's model and report stay in
``OUT/loso/<source>/`` and finished stages are reused, as in the demo.
"""

from __future__ import annotations

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


def run_loso(config: DemoConfig, held_out: list[str] | None = None,
             log: Callable[[str], None] = print) -> dict:
    """Train once per held-out source without it (``held_out``; None: every source of the build) and score it.
    Returns the summary also written to ``OUT/loso.json`` (and ``OUT/loso.md``)."""
    from .datasets.omnidigits import load_manifest
    from .datasets.omnidigits_pools import KIND_OF_SOURCE, check_source_names

    check_sizes(config)
    check_source_names(held_out or [])
    out = Path(config.out)
    log("== data (every source)")
    data_dir = build_data(config, out / "data", log)
    names = load_manifest(data_dir).source_names
    available = [s for kind in KINDS for s in names.get(kind, [])]
    chosen = available if not held_out else list(dict.fromkeys(held_out))
    missing = [s for s in chosen if s not in available]
    if missing:
        raise ConfigError(f"loso: {', '.join(missing)} is not a source of this build ({', '.join(available)})")
    anchor = None
    if any(KIND_OF_SOURCE[s] != "image" for s in chosen):
        log("== anchor on every source (shared by the audio and point-cloud folds)")
        anchor = train_stage(config.anchor_recipe, config.anchor_steps, config, data_dir, out / "anchor")
    folds = []
    for source in chosen:
        log(f"== leave out {source}")
        t0 = time.perf_counter()
        report = _fold(config, source, KIND_OF_SOURCE[source], anchor, data_dir, out / "loso" / source, log)
        folds.append(fold_figures(source, KIND_OF_SOURCE[source], report, time.perf_counter() - t0))
        log(f"   {source}: zero-shot {folds[-1].out_of_source:.1%} held out"
            + (f" (in-source {folds[-1].in_source:.1%})" if folds[-1].in_source is not None else ""))
    summary = summarise(folds, config)
    _write(out, summary)
    log(f"\nleave-one-source-out table: {out / 'loso.md'}\n" + markdown(summary))
    return summary


def _fold(config: DemoConfig, source: str, kind: str, full_anchor: Path | None, test_data: Path, fold_dir: Path,
          log: Callable[[str], None]) -> dict:
    data_dir = build_data(config, fold_dir / "data", log, exclude=(source,))
    anchor = (train_stage(config.anchor_recipe, config.anchor_steps, config, data_dir, fold_dir / "anchor")
              if kind == "image" else full_anchor)
    model = train_stage(config.recipe, config.steps, config, data_dir, fold_dir / "run", [f"model.init={anchor}"])
    return evaluate_model(model, test_data, fold_dir / "report", show=False)


def fold_figures(source: str, kind: str, report: dict, seconds: float = 0.0) -> LosoFold:
    """A fold's figures from its eval report (as :meth:`~omniembed.eval.EvalReport.as_dict`)."""
    by_source = report.get("zero_shot_by_source", {}).get(kind, {})
    if source not in by_source:
        raise ConfigError(f"loso: the test split has no {kind} input from {source} to score")
    others = [r["top1"] for name, r in by_source.items() if name != source]
    into = {}
    if kind == "image":
        for pair in RETRIEVAL_INTO_IMAGES:
            entry = report.get("retrieval_by_source", {}).get(pair, {}).get("target", {}).get(source)
            if entry is not None:
                into[pair] = entry["R@1"]
    return LosoFold(source, kind, by_source[source]["top1"], float(np.mean(others)) if others else None, into,
                    round(seconds, 1))


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
        lines.append(f"| {f['source']} | {f['kind']} | {f['out_of_source']:.1%} | {_pct(f['in_source'])} | "
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
