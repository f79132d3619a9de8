"""OmniDigits: one digit class 0–9 seen in every modality — image, spoken audio, caption, video, point cloud.

A sample of class ``c`` is made of three different handwritten scans of ``c`` (for the image, the video and the
point cloud) and two different recordings of ``c`` (for the audio file and the video's sound track), so no
modality is a trivial copy of another. Sources (see :mod:`.omnidigits_sources` for their split rules):

* ``"shared"`` — the MNIST test set and the Free Spoken Digit Dataset from a data root holding ``mnist/`` and
  ``fsdd/``: the ``shared_root`` argument (``--shared-root``), else the ``OMNIEMBED_SHARED_DATA`` environment
  variable; there is no default root;
* ``"offline"`` — scikit-learn's digit scans and espeak-ng speech (needs the ``espeak-ng`` program);
* ``"auto"`` — shared when a data root is given and holds every folder the requested modalities need, else offline;
* ``"all"`` — every source at hand (:mod:`.omnidigits_pools`): MNIST and FSDD when the root holds them, scikit-learn
  digits, digits rendered from the system's fonts, espeak-ng's and flite's voices (:mod:`.omnidigits_speech`) and
  five point-cloud lifting recipes.
  Each sample draws each of its inputs from a source picked at random (sources equally likely).

Every file is tagged with the source it came from (``STEM.src``: {modality: source name}, also in the shards), so
``omniembed eval`` can score each source apart. ``exclude`` leaves whole sources out of the train split (the test
split keeps every source): the leave-one-source-out protocol trains on such a build and scores the left-out source.

Train and test draw from disjoint writers (images) and speakers/voices (audio), so nothing leaks: no scan or
recording is in both. Within a split, scans and recordings are reused across samples only after every one of
the class has been used. Output, written into a staging folder swapped in for ``out`` at the end::

    out/manifest.json                 counts, source, class names, prompt templates, split rules, seed, skipped
    out/{train,test}/{idx:05d}.png    .wav .txt .mp4 .ply, .cls (the class index) and .src (the sources)
    out/{train,test}.jsonl            one line per sample: key, label, caption, the source ids it was made from
                                      and the source names of its files (``origins``)
    out/shards/{train,test}/shards.json + omnidigits-{split}-000000.tar …   webdataset shards for pretraining

The build is a pure function of its arguments (``seed`` included): the same call writes the same bytes, for
any ``workers``.
"""

from __future__ import annotations

import json
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from ..errors import ConfigError, MissingInputError
from .omnidigits_lifts import DEFAULT_LIFT
from .omnidigits_pools import SourcePools, check_source_names, load_pools
from .omnidigits_render import SOURCE_SUFFIX, SampleTask, render_sample
from .omnidigits_sources import DIGIT_WORDS, SPLITS, AudioPool, ImagePool

CLASS_NAMES = DIGIT_WORDS
PROMPT_TEMPLATES = ("a photo of the digit {}.", "a handwritten {}.", "the number {}.", "the spoken digit {}.", "{}")
"""Zero-shot prompts: ``template.format(class_name)`` (the shape omniembed.eval.text_classifier takes)."""
CAPTION_TEMPLATES = ("a photo of the digit {name}", "the number {numeral}", "{name}", "a handwritten {numeral}",
                     "a handwritten digit {name}", "the number {name}", "the digit {numeral}",
                     "someone saying {name}", "a picture of a {numeral}", "{numeral}")
"""One is drawn per sample: ``template.format(name="seven", numeral="7")``."""
EXTENSIONS = {"image": "png", "audio": "wav", "text": "txt", "video": "mp4", "pointcloud": "ply"}
MODALITIES = tuple(EXTENSIONS)
LABEL_EXTENSION = "cls"
SOURCES = ("auto", "shared", "offline", "all")
NEEDS_IMAGES, NEEDS_AUDIO = {"image", "video", "pointcloud"}, {"audio", "video"}
IMAGES_PER_SAMPLE, RECORDINGS_PER_SAMPLE = 3, 2
SHARED_ROOT_ENV = "OMNIEMBED_SHARED_DATA"
"""The environment variable naming the shared data root when ``shared_root`` is not given."""
MANIFEST_FILE = "manifest.json"
BUILD_VERSION = 3
"""Bumped whenever a build's files change for the same arguments, so an older build is made again, not reused
(2: synthetic speech has silent margins around it; 3: its noise is coloured, not white)."""


@dataclass
class Manifest:
    """What a build wrote (``out/manifest.json``). ``counts``: {split: {modality: files}}; ``split_rule``:
    {source name: its train/test rule}; ``skipped``: source files left out, as {"source", "reason"}."""

    source: str
    seed: int
    modalities: list[str]
    counts: dict[str, dict[str, int]]
    class_names: list[str] = field(default_factory=lambda: list(CLASS_NAMES))
    prompt_templates: list[str] = field(default_factory=lambda: list(PROMPT_TEMPLATES))
    split_rule: dict[str, str] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    shards: dict[str, str] = field(default_factory=dict)
    skipped: list[dict[str, str]] = field(default_factory=list)
    source_names: dict[str, list[str]] = field(default_factory=dict)
    """{"image" | "audio" | "pointcloud": the names of the sources drawn from}."""
    excluded: list[str] = field(default_factory=list)
    """Sources left out of the train split (leave-one-source-out)."""
    name: str = "omnidigits"
    version: int = 1
    """The :data:`BUILD_VERSION` the build was made by (a manifest without one: 1)."""


@dataclass
class DigitRecord:
    """One sample of a split: its ``label`` (class index), ``caption``, ``paths`` {modality: file} and the
    ``sources`` {role: source id} it was made from; ``origins`` {modality: source name}."""

    key: str
    label: int
    caption: str
    paths: dict[str, Path]
    sources: dict[str, str]
    origins: dict[str, str] = field(default_factory=dict)


def build_omnidigits(out: str | os.PathLike, n_train: int = 2000, n_test: int = 500, source: str = "auto",
                     modalities: Iterable[str] = MODALITIES, seed: int = 0, workers: int | None = None,
                     shared_root: str | os.PathLike | None = None, shard_size: int = 500,
                     log: Callable[[str], None] | None = None, exclude: Iterable[str] = ()) -> Manifest:
    """Build OmniDigits into ``out`` (replaced as a whole once complete) and return its manifest.

    ``workers``: processes rendering samples (default: the CPU count, at most 8; 1 renders in this process).
    ``shared_root``: the folder holding ``mnist/`` and ``fsdd/`` (default ``$OMNIEMBED_SHARED_DATA``; without
    either, ``source="auto"`` builds from the offline sources). ``log`` receives one line per stage. ``exclude``:
    source names left out of the train split (each must be one of the build's sources). Raises
    :class:`ConfigError` for bad arguments, :class:`MissingInputError` when ``source="shared"`` and there is no
    data root or a shared folder is missing, and :class:`~.omnidigits_sources.MissingToolError` when offline
    audio is needed and espeak-ng is not installed.
    """
    from ..io import atomic_dir, write_json  # imports torch (safetensors); the CLI's parser imports this module

    out = Path(out)
    modalities = _check_modalities(modalities)
    for name, n in (("n_train", n_train), ("n_test", n_test), ("shard_size", shard_size)):
        if n < 1:
            raise ConfigError(f"omnidigits: {name} must be at least 1, got {n}")
    if source not in SOURCES:
        raise ConfigError(f"omnidigits: source '{source}' is not one of {list(SOURCES)}")
    if out.exists() and (not out.is_dir() or any(out.iterdir()) and not (out / MANIFEST_FILE).is_file()):
        raise ConfigError(f"omnidigits: {out} is a file or a non-empty folder that is not an OmniDigits build; "
                          f"refusing to replace it")
    workers = workers or min(8, os.cpu_count() or 1)
    say = log or (lambda message: None)
    root = shared_data_root(shared_root)
    source = _resolve_source(source, root, modalities)
    excluded = sorted(set(exclude))
    check_source_names(excluded)
    say(f"loading {source} sources")
    pools = load_pools(source, root, bool(NEEDS_IMAGES & set(modalities)), bool(NEEDS_AUDIO & set(modalities)),
                       "pointcloud" in modalities, seed, workers)
    missing = [name for name in excluded if not any(name in names for names in pools.names().values())]
    if missing:
        raise ConfigError(f"omnidigits: cannot leave out {', '.join(missing)}: not a source of this build "
                          f"({', '.join(n for names in pools.names().values() for n in names)})")
    for s in pools.skipped:
        say(f"skipped {s.source}: {s.reason}")
    counts, shards = {}, {}
    with atomic_dir(out) as stage:
        for split, n in zip(SPLITS, (n_train, n_test)):
            split_pools = pools.without(set(excluded)) if split == "train" else pools
            plans = plan_split(split, n, split_pools, seed)
            say(f"rendering {split}: {n} samples with {workers} worker(s)")
            _render(_tasks(stage / split, plans, split_pools, modalities), workers)
            _write_jsonl(stage / f"{split}.jsonl", plans, split_pools, modalities)
            counts[split] = {m: sum(1 for _ in (stage / split).glob(f"*.{EXTENSIONS[m]}")) for m in modalities}
            say(f"packing {split} shards")
            shards[split] = _pack_shards(stage, split, modalities, shard_size, seed)
        manifest = Manifest(
            source=source, seed=seed, modalities=list(modalities), counts=counts, shards=shards,
            split_rule={p.name: p.split_rule for p in (*pools.images, *pools.audio)},
            sources={k: ", ".join(names) for k, names in pools.names().items() if k != "pointcloud"},
            skipped=[asdict(s) for s in pools.skipped], source_names=pools.names(), excluded=excluded,
            version=BUILD_VERSION)
        write_json(stage / MANIFEST_FILE, asdict(manifest))
    return manifest


def load_manifest(out: str | os.PathLike) -> Manifest:
    """The :class:`Manifest` of a build."""
    path = Path(out) / MANIFEST_FILE
    if not path.is_file():
        raise MissingInputError(str(path), "no OmniDigits manifest (build one with `omniembed data omnidigits`)")
    return Manifest(**json.loads(path.read_text(encoding="utf-8")))


def load_split(out: str | os.PathLike, split: str) -> list[DigitRecord]:
    """The samples of ``split`` ("train" | "test") of the build in ``out``, in key order."""
    out = Path(out)
    if split not in SPLITS:
        raise ConfigError(f"omnidigits: split '{split}' is not one of {list(SPLITS)}")
    manifest = load_manifest(out)
    records = []
    for line in (out / f"{split}.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        paths = {m: out / split / f"{row['key']}.{EXTENSIONS[m]}" for m in manifest.modalities}
        records.append(DigitRecord(row["key"], row["label"], row["caption"], paths, row["sources"],
                                   row.get("origins", {})))
    return records


# ---- planning: which sources each sample is made of ----------------------------------------------------------------
@dataclass
class SamplePlan:
    """One sample: ``images`` / ``recordings`` are (pool, item) indices into the split's pools (None when not
    needed); ``lift`` indexes the pools' point-cloud recipes."""

    key: str
    label: int
    caption: str
    images: list[tuple[int, int]] | None
    recordings: list[tuple[int, int]] | None
    lift: int
    seed: int


class ClassCycler:
    """Draws distinct items of one class, going through a fresh shuffle of all of them before any repeats."""

    def __init__(self, items: np.ndarray, rng: np.random.Generator):
        self.items, self.rng, self.queue = items, rng, []

    def take(self, k: int) -> list[int]:
        picked, deferred = [], []
        while len(picked) < k:
            if not self.queue:
                self.queue = [int(i) for i in self.rng.permutation(self.items)]
            item = self.queue.pop()
            (deferred if item in picked else picked).append(item)
        self.queue.extend(reversed(deferred))  # drawn again first
        return picked


def plan_split(split: str, n: int, pools: SourcePools, seed: int) -> list[SamplePlan]:
    """``n`` class-balanced samples of ``split``, each input drawn from the split's part of a pool picked at random
    (pools equally likely), distinct items within a sample."""
    rng = np.random.default_rng([seed, SPLITS.index(split)])
    labels = rng.permutation(np.arange(n) % len(CLASS_NAMES))
    image_draw = _PoolDraw(pools.images, split, IMAGES_PER_SAMPLE, rng)
    audio_draw = _PoolDraw(pools.audio, split, RECORDINGS_PER_SAMPLE, rng)
    plans = []
    for i, label in enumerate(int(c) for c in labels):
        template = CAPTION_TEMPLATES[int(rng.integers(len(CAPTION_TEMPLATES)))]
        images, recordings = image_draw.take(label), audio_draw.take(label)
        lift = int(rng.integers(len(pools.lifts))) if len(pools.lifts) > 1 else 0
        plans.append(SamplePlan(key=f"{i:05d}", label=label,
                                caption=template.format(name=CLASS_NAMES[label], numeral=label), images=images,
                                recordings=recordings, lift=lift, seed=int(rng.integers(2 ** 63))))
    return plans


class _PoolDraw:
    """Per pool and class, a :class:`ClassCycler`; a sample's ``per_sample`` inputs each come from a pool picked at
    random (no draw when there is one pool, so a single-source build plans as it always has)."""

    def __init__(self, pools: list[ImagePool] | list[AudioPool], split: str, per_sample: int,
                 rng: np.random.Generator):
        self.per_sample, self.rng = per_sample, rng
        self.cyclers = [_cyclers(pool, split, per_sample, rng) for pool in pools]

    def take(self, label: int) -> list[tuple[int, int]] | None:
        if not self.cyclers:
            return None
        n_pools = len(self.cyclers)
        chosen = self.rng.integers(n_pools, size=self.per_sample) if n_pools > 1 else np.zeros(self.per_sample, int)
        items = {int(p): iter(self.cyclers[p][label].take(int((chosen == p).sum()))) for p in np.unique(chosen)}
        return [(int(p), next(items[int(p)])) for p in chosen]


def _cyclers(pool: ImagePool | AudioPool, split: str, per_sample: int,
             rng: np.random.Generator) -> list[ClassCycler]:
    index = pool.splits[split]
    cyclers = []
    for label in range(len(CLASS_NAMES)):
        items = index[pool.labels[index] == label]
        if len(items) < per_sample:
            raise ConfigError(f"omnidigits: {pool.name} has {len(items)} usable {split} items of class {label}, "
                              f"a sample needs {per_sample} different ones")
        cyclers.append(ClassCycler(items, rng))
    return cyclers


# ---- sources, rendering, shards -------------------------------------------------------------------------------------
def _check_modalities(modalities: Iterable[str]) -> tuple[str, ...]:
    chosen = tuple(dict.fromkeys(modalities))
    unknown = [m for m in chosen if m not in EXTENSIONS]
    if unknown or not chosen:
        raise ConfigError(f"omnidigits: modalities {unknown or '(none)'} not among {list(MODALITIES)}")
    return chosen


def shared_data_root(shared_root: str | os.PathLike | None = None) -> Path | None:
    """The shared data root: ``shared_root`` when given, else ``$OMNIEMBED_SHARED_DATA``, else None."""
    chosen = shared_root or os.environ.get(SHARED_ROOT_ENV)
    return Path(chosen) if chosen else None


def _resolve_source(source: str, root: Path | None, modalities: tuple[str, ...]) -> str:
    if root is None:
        if source == "shared":
            raise MissingInputError("shared data root", f"none given: pass shared_root (--shared-root) or set "
                                                        f"${SHARED_ROOT_ENV} to the folder holding mnist/ and fsdd/")
        return "offline" if source == "auto" else source
    needed = ([root / "mnist"] if NEEDS_IMAGES & set(modalities) else []) + \
             ([root / "fsdd"] if NEEDS_AUDIO & set(modalities) else [])
    missing = [p for p in needed if not p.is_dir()]
    if source == "shared" and missing:
        raise MissingInputError(str(missing[0]), "shared data folder not found (build with source='offline')")
    if source == "auto":
        return "offline" if missing else "shared"
    return source


def _tasks(directory: Path, plans: list[SamplePlan], pools: SourcePools,
           modalities: tuple[str, ...]) -> list[SampleTask]:
    directory.mkdir(parents=True)
    extensions = {m: EXTENSIONS[m] for m in modalities}
    rates = {pool.sample_rate for pool in pools.audio}
    if len(rates) > 1:
        raise ConfigError(f"omnidigits: audio sources at different rates ({sorted(rates)} Hz) cannot share a build")
    rate = rates.pop() if rates else 0
    return [SampleTask(
        directory=str(directory), key=p.key, label=p.label, caption=p.caption, extensions=extensions,
        images=tuple(pools.images[k].pixels[i] for k, i in p.images) if p.images else None,
        waves=tuple(pools.audio[k].waves[i] for k, i in p.recordings) if p.recordings else None,
        sample_rate=rate,
        synthetic_audio=tuple(pools.audio[k].synthetic for k, _ in p.recordings or ()),
        seed=p.seed, lift=pools.lifts[p.lift] if pools.lifts else DEFAULT_LIFT,
        origins=_origins(p, pools, modalities)) for p in plans]


def _render(tasks: list[SampleTask], workers: int) -> None:
    if workers <= 1 or len(tasks) < 2 * workers:
        for task in tasks:
            render_sample(task)
        return
    # fork where there is one: a worker needs only numpy/PIL/PyAV, and a spawned one would re-import torch
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        list(pool.map(render_sample, tasks, chunksize=max(1, len(tasks) // (8 * workers))))


def _write_jsonl(path: Path, plans: list[SamplePlan], pools: SourcePools, modalities: tuple[str, ...]) -> None:
    with path.open("w", encoding="utf-8") as f:
        for p in plans:
            f.write(json.dumps({"key": p.key, "label": p.label, "caption": p.caption,
                                "sources": _source_ids(p, pools),
                                "origins": _origins(p, pools, modalities)}) + "\n")


def _source_ids(plan: SamplePlan, pools: SourcePools) -> dict[str, str]:
    ids = {}
    if plan.images:
        ids.update(zip(("image", "video_image", "pointcloud_image"),
                       (pools.images[k].ids[i] for k, i in plan.images)))
    if plan.recordings:
        ids.update(zip(("audio", "video_audio"), (pools.audio[k].ids[i] for k, i in plan.recordings)))
    return ids


def _origins(plan: SamplePlan, pools: SourcePools, modalities: tuple[str, ...]) -> dict[str, str]:
    """{modality: source name} of the sample's files: a video is tagged with its frames' source, a point cloud
    with its lifting recipe."""
    names = {}
    if plan.images:
        names.update({"image": pools.images[plan.images[0][0]].name, "video": pools.images[plan.images[1][0]].name})
    if plan.recordings:
        names["audio"] = pools.audio[plan.recordings[0][0]].name
    if pools.lifts:
        names["pointcloud"] = pools.lifts[plan.lift]
    return {m: name for m, name in names.items() if m in modalities}


def _pack_shards(stage: Path, split: str, modalities: tuple[str, ...], shard_size: int, seed: int) -> str:
    from .shards import INDEX_FILE, make_shards

    folder = stage / split
    keys = sorted(p.stem for p in folder.glob(f"*.{LABEL_EXTENSION}"))
    extensions = [EXTENSIONS[m] for m in modalities] + [LABEL_EXTENSION, SOURCE_SUFFIX.lstrip(".")]
    samples = [{"__key__": key, **{ext: folder / f"{key}.{ext}" for ext in extensions}} for key in keys]
    make_shards(samples, stage / "shards" / split, maxcount=shard_size, prefix=f"omnidigits-{split}", seed=seed)
    return f"shards/{split}/{INDEX_FILE}"
