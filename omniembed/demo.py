"""The OmniDigits demo: the whole mission end to end, offline, on a CPU.

1. build OmniDigits (image, spoken audio, caption, video with its audio track, point cloud per digit) from every
   source at hand (``source="all"``: handwritten scans, font renders, recorded and synthesised speech, several
   point-cloud lifting recipes), each file tagged with its source;
2. train with the pretraining code in ImageBind's two steps: the anchor, an image–text model
   (``pretrain/recipes/omnidigits_anchor.yaml``); then audio, video and point clouds each bound to its frozen
   image tower (``pretrain/recipes/omnidigits.yaml``). Pairs image–text, image–audio, image–video and image–point
   cloud only;
3. evaluate: zero-shot by text prompts for every modality and retrieval for every ordered pair, flagging the
   emergent ones (never trained together, e.g. audio→text, audio→point cloud), each also broken down by source;
4. index the test split and run a few cross-modal searches.

Every stage is resumable: a finished stage (dataset, each exported model, index) is reused when the demo runs
again with the same settings, and an interrupted training resumes from its last checkpoint, so an interrupted
``make demo`` picks up where it stopped. The evaluation (seconds) and the searches run every time.

Leave-one-source-out (:mod:`.loso`, ``omniembed demo --loso``) runs the same stages once per held-out source.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from .errors import ConfigError


@dataclass
class DemoConfig:
    """Sizes of one demo run. ``quick`` shrinks everything to what a test can afford (about two minutes): 300
    anchor and 200 binding steps, since with every source mixed and the scan augmentation 150 and 100 left emergent
    zero-shot near chance (seed 0: best emergent top-1 0.22 of 60; with 300/200, 0.45)."""

    out: Path = Path("omnidigits-demo")
    source: str = "all"
    """Which OmniDigits sources (:func:`~omniembed.datasets.build_omnidigits`): every one at hand by default."""
    shared_root: Path | None = None
    """The folder holding MNIST and FSDD (``mnist/``, ``fsdd/``); None: ``$OMNIEMBED_SHARED_DATA``, else the
    sources that need no data root only."""
    n_train: int = 10000
    """Five samples per training recording of the Free Spoken Digit Dataset (~55 s to build): each recording
    meets five pictures of its digit, so audio cannot tie itself to one (emergent audio, seeds 0–3: 86.8–89.8 %
    against 84.8–90.2 % with 6000; audio-only binding, 3 seeds: 85.1 % with 6000 against 80.5 % with 2000)."""
    n_test: int = 500
    anchor_steps: int = 800
    """Image–text steps; on an idle 2-core CPU one (batch 64) takes ~0.15 s with AVX512, ~0.22 s with AVX2 only.
    The scan augmentation (stretched and 6 px scans included) needs more than 500: with 500 (seed 0) image
    zero-shot was 91.8 % and the emergent clouds 79.8 %, with 800 97.4 % and 87.8 %."""
    steps: int = 900
    """Binding steps (audio, video, point cloud to the frozen image tower), ~0.4 s each on an idle 2-core CPU
    (AVX-512; the point-cloud tower's 64 groups take about half of a full step). The recipe's datasets share them:
    audio is in ~450, video in ~225, point clouds in all 900 (``pretrain/recipes/omnidigits.yaml``); the audio
    tower's pretrained speech front end learns no more in 700 (its comments have the figures). The README's
    OmniDigits section has what `make demo` takes with them."""
    batch_size: int = 64
    seed: int = 0
    anchor_recipe: str = "omnidigits_anchor"
    recipe: str = "omnidigits"
    overrides: list[str] = field(default_factory=list)
    """``key=value`` settings for both recipes (e.g. ``optim.lr=1e-3``)."""

    @classmethod
    def quick(cls, out: Path, source: str = "all", seed: int = 0, shared_root: Path | None = None) -> "DemoConfig":
        return cls(out=out, source=source, shared_root=shared_root, n_train=200, n_test=60, anchor_steps=300,
                   steps=200, batch_size=32, seed=seed)


@dataclass
class DemoResult:
    model_dir: Path
    index_dir: Path
    report_dir: Path
    report: dict
    seconds: dict[str, float]


def run_demo(config: DemoConfig, log: Callable[[str], None] = print) -> DemoResult:
    """Run (or resume) every stage; returns where the model, index and report are, and each stage's time."""
    check_sizes(config)
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    seconds: dict[str, float] = {}

    def stage(name: str, fn: Callable[[], object]) -> object:
        log(f"== {name}")
        t0 = time.perf_counter()
        result = fn()
        seconds[name] = round(time.perf_counter() - t0, 1)
        log(f"   {name}: {seconds[name]:.1f} s")
        return result

    data_dir = stage("data", lambda: build_data(config, out / "data", log))
    anchor_dir = stage("anchor", lambda: train_stage(config.anchor_recipe, config.anchor_steps, config, data_dir,
                                                     out / "anchor"))
    model_dir = stage("bind", lambda: train_stage(config.recipe, config.steps, config, data_dir, out / "run",
                                                  [f"model.init={anchor_dir}"]))
    report_dir = out / "report"
    report = stage("eval", lambda: evaluate_model(model_dir, data_dir, report_dir))
    index_dir = stage("index", lambda: index_test_split(model_dir, data_dir, out / "index"))
    stage("search", lambda: show_searches(model_dir, data_dir, index_dir, log))
    write_summary(out / "demo.json", config, seconds, report)
    return DemoResult(model_dir, index_dir, report_dir, report, seconds)


# ---- stages ------------------------------------------------------------------------------------------------------
def build_data(config: DemoConfig, directory: Path, log: Callable[[str], None],
               exclude: tuple[str, ...] = ()) -> Path:
    """OmniDigits at the configured size, ``exclude`` left out of its train split; an existing build with the same
    settings, made by this version of the builder, is reused."""
    from .datasets.omnidigits import BUILD_VERSION, MANIFEST_FILE, build_omnidigits, load_manifest

    wanted = {"train": config.n_train, "test": config.n_test}
    if (directory / MANIFEST_FILE).is_file():
        manifest = load_manifest(directory)
        have = {split: max(counts.values(), default=0) for split, counts in manifest.counts.items()}
        if (have == wanted and manifest.seed == config.seed and config.source in ("auto", manifest.source)
                and manifest.excluded == sorted(exclude) and manifest.version == BUILD_VERSION):
            log(f"   reusing {directory} ({manifest.source} sources)")
            return directory
    manifest = build_omnidigits(directory, n_train=config.n_train, n_test=config.n_test, source=config.source,
                                seed=config.seed, shared_root=config.shared_root, log=lambda line: log(f"   {line}"),
                                exclude=exclude)
    log(f"   {manifest.source} sources: {json.dumps(manifest.counts)}")
    return directory


def train_stage(recipe: str, steps: int, config: DemoConfig, data_dir: Path, run_dir: Path,
                settings: list[str] = ()) -> Path:
    """Train from ``recipe``, every dataset of it reading the build's train shards; a finished run's exported model
    is reused and an interrupted one resumed from its last checkpoint."""
    from .datasets.omnidigits import load_manifest
    from .pretrain.config import load_config
    from .pretrain.trainer import train

    exported = run_dir / "model"
    if (exported / "config.json").is_file():
        return exported
    shards = load_manifest(data_dir).shards["train"]
    shards_path = Path(shards) if Path(shards).is_absolute() else data_dir / shards
    datasets = len(load_config(recipe).data.datasets)
    overrides = [*(f"data.datasets.{i}.shards=[{shards_path}]" for i in range(datasets)), f"train.out_dir={run_dir}",
                 f"train.steps={steps}", f"data.batch_size={config.batch_size}", f"train.seed={config.seed}",
                 *settings, *config.overrides]
    return train(load_config(recipe, overrides), resume=True)


def evaluate_model(model_dir: Path, data_dir: Path, report_dir: Path, show: bool = True) -> dict:
    """Zero-shot and retrieval scores on the test split (report.md/json and plots in ``report_dir``), printed
    when ``show``."""
    from . import load
    from .datasets.omnidigits import load_manifest
    from .eval.folder import eval_set_from_folder
    from .eval.runner import evaluate
    from .model import trained_pairs

    manifest = load_manifest(data_dir)
    model = load(model_dir)
    data = eval_set_from_folder(data_dir / "test", model, manifest.class_names)
    report = evaluate(model, data, trained_pairs=trained_pairs(model_dir), templates=manifest.prompt_templates,
                      out_dir=report_dir)
    if show:
        print(report.markdown())
    return report.as_dict()


def index_test_split(model_dir: Path, data_dir: Path, index_dir: Path) -> Path:
    """A retrieval index over every test file (captions included), built incrementally; each file labelled with
    its digit's name (what search results and the search page show beside it)."""
    from .datasets.omnidigits import load_manifest, load_split
    from .index import Index

    names = load_manifest(data_dir).class_names
    labels = {p.resolve(): names[r.label] for r in load_split(data_dir, "test") for p in r.paths.values()}
    Index.build(model_dir, index_dir, [data_dir / "test"], label=lambda p: labels.get(Path(p).resolve()),
                progress=False).close()
    return index_dir


def show_searches(model_dir: Path, data_dir: Path, index_dir: Path, log: Callable[[str], None]) -> None:
    """Three cross-modal searches, one of them along an emergent pair (audio → point cloud)."""
    from .datasets.omnidigits import load_split
    from .index import Index

    index = Index.open(index_dir)
    records = load_split(data_dir, "test")
    spoken = next(r for r in records if r.label == 3)
    shape = next(r for r in records if r.label == 7)
    queries = [("text 'the number seven'", "the number seven", ["image"]),
               (f"audio {spoken.paths['audio'].name} (a spoken three)", str(spoken.paths["audio"]), ["pointcloud"]),
               (f"point cloud {shape.paths['pointcloud'].name} (a seven)", str(shape.paths["pointcloud"]), ["audio"])]
    labels = {str(p.resolve()): r.label for r in records for p in r.paths.values()}
    for title, query, modalities in queries:
        hits = index.search(query, k=5, modalities=modalities)
        log(f"-- {title} → {', '.join(modalities)}")
        for rank, hit in enumerate(hits, 1):
            label = labels.get(str(Path(hit.path).resolve()), "?")
            log(f"   {rank}. {hit.score:.3f}  {hit.modality:<10} {hit.path}  (digit {label})")
    log(f"\nTry it yourself:\n  omniembed search {index_dir} --text \"the number three\" --modality image,audio\n"
        f"  omniembed search {index_dir} --query {spoken.paths['audio']} --modality pointcloud,video --grid grid.png")


def write_summary(path: Path, config: DemoConfig, seconds: dict[str, float], report: dict) -> None:
    from .io import write_json

    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()}
    write_json(path, {"config": settings, "seconds": seconds, "total_seconds": round(sum(seconds.values()), 1),
                      "zero_shot_top1": {m: r["top1"] for m, r in report["zero_shot"].items()},
                      "retrieval_R@1": {p: r["R@1"] for p, r in report["retrieval"].items()},
                      "zero_shot_top1_by_source": {m: {s: r["top1"] for s, r in by.items()}
                                                   for m, by in report.get("zero_shot_by_source", {}).items()}})


def check_sizes(config: DemoConfig) -> None:
    for name in ("n_train", "n_test", "anchor_steps", "steps", "batch_size"):
        if getattr(config, name) < 1:
            raise ConfigError(f"demo: {name} must be at least 1, got {getattr(config, name)}")
