"""Experiment configuration: typed dataclasses, loaded from one YAML file, overridable by ``key=value`` arguments.

A recipe is a YAML file whose keys mirror :class:`ExperimentConfig`::

    model: {init: omni-tiny, frozen: [image]}
    data:
      batch_size: 256                      # global: summed over every process
      datasets:
        - {name: cc3m, shards: "cc3m/{000000..000331}.tar", pairs: [[image, text]], weight: 3}
        - {name: audioset, shards: "as/{000000..000099}.tar", pairs: [[image, audio]], weight: 1}
    optim: {lr: 5.0e-4, warmup_steps: 2000}
    train: {steps: 100000, out_dir: runs/omni-base}

Overrides use dotted paths, list items by index: ``optim.lr=1e-4 data.datasets.0.weight=2``; the value is parsed
as YAML (``true``, ``1e-4``, ``[image, text]``). Unknown keys and wrong types raise :class:`ConfigError` naming
the path.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from omniembed.config import (FieldError, check_choices, check_fraction, check_non_negative, check_positive,
                              from_dict, to_dict)
from omniembed.errors import ConfigError
from omniembed.extras import require

yaml = require("yaml", "training recipes (YAML)")

from .augment import build_transform


@dataclass
class LoRAConfig:
    """Low-rank adapters on every ``nn.Linear`` of the anchor's trunk: W x + (alpha / rank) · B A x, B zero-init."""

    rank: int = 8
    alpha: float = 16.0

    def __post_init__(self) -> None:
        check_positive(self, "rank", "alpha")


@dataclass
class ModelSection:
    """Which model to train and which of its parts learn.

    ``init``: a registered model name (random init with ``train.seed``), a model config ``.json`` or a checkpoint
    directory (pretrained towers). ``modalities``: the subset of a named model's modalities to build (default: the
    anchor plus every modality some dataset pairs). ``overrides``: dotted model-config keys set before building, e.g.
    ``{"embed_dim": 16, "modalities.image.image_size": 32}``. ``frozen``: modalities whose towers do not learn
    (default: the anchor, as ImageBind). ``anchor_lora``: adapters on the (frozen) anchor's trunk.
    """

    init: str = "omni-tiny"
    modalities: list[str] | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    frozen: list[str] | None = None
    anchor_lora: LoRAConfig | None = None
    grad_checkpointing: bool = False


@dataclass
class DatasetConfig:
    """One source of training pairs.

    ``shards``: webdataset tar files, brace patterns allowed (``data/{000000..000099}.tar``), or the path of a
    ``.json`` shard index written by ``omniembed data shards``. ``pairs``: ``[anchor_side, other]`` modality pairs
    scored by the loss; the pair's temperature is ``other``'s logit scale (a ULIP triplet gives
    ``[[image, pointcloud], [text, pointcloud]]``). ``weight``: probability (normalised over datasets) that a step
    draws its batch from this dataset. ``keys``: modality → file extension in the samples, where the suffix
    registry would be ambiguous. ``batch_size``: a global batch for this dataset instead of ``data.batch_size``.
    ``loss_weights``: per-pair multipliers, in ``pairs`` order. ``group_key``: a member naming each sample's group
    (``cls``: its class, as text); the loss then counts every pair of one group as a positive (see
    :mod:`omniembed.pretrain.losses`), and a sample without the member counts as incomplete. Default: only a
    sample's own partner is its positive.
    """

    name: str = ""
    shards: list[str] = field(default_factory=list)
    pairs: list[list[str]] = field(default_factory=list)
    weight: float = 1.0
    keys: dict[str, str] = field(default_factory=dict)
    batch_size: int | None = None
    loss_weights: list[float] | None = None
    group_key: str | None = None

    def __post_init__(self) -> None:
        check_positive(self, "weight", "batch_size")
        if self.group_key is not None and (not self.group_key or self.group_key.startswith("__")):
            raise ConfigError(f"dataset {self.name}: group_key must name a sample member such as 'cls', got "
                              f"{self.group_key!r}")


@dataclass
class DataConfig:
    """Sampling of the global batch.

    The global batch of a step is the concatenation of ``streams`` independent sample streams, each giving
    ``batch_size / streams`` samples; process ``r`` of ``W`` owns streams ``[r·S/W, (r+1)·S/W)``. The data a step
    sees therefore depends only on the seed, not on the number of processes or loader workers (``streams`` must be
    divisible by processes × workers).
    """

    datasets: list[DatasetConfig] = field(default_factory=list)
    batch_size: int = 256
    streams: int = 8
    shuffle_buffer: int = 1000
    num_workers: int = 2
    prefetch: int = 2
    max_skip_fraction: float = 0.5
    """Stop with an error when more than this share of the samples read so far were corrupt or incomplete."""
    decoded_cache_mb: int = 0
    """Keep up to this many MiB of decoded files in each loader worker, so that a sample met again (a dataset
    that fits in memory, seen for several epochs) is not decoded again (:mod:`.decoded_cache`). 0: off."""
    augment: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Training-time augmentation per modality, ``{modality: {kind: affine | points, ...}}`` (:mod:`.augment`)."""
    allow_pipe_urls: bool = False
    """Let this recipe's shard lists hold ``pipe:CMD`` URLs, which webdataset runs as shell commands. Shard index
    files (``shards.json``) may never hold them (:mod:`.shard_urls`)."""

    def __post_init__(self) -> None:
        check_positive(self, "batch_size", "streams", "shuffle_buffer", "prefetch")
        check_non_negative(self, "num_workers", "decoded_cache_mb")
        check_fraction(self, "max_skip_fraction")


@dataclass
class OptimConfig:
    """AdamW (no weight decay on norms, biases, logit scales) with linear warmup then cosine decay."""

    lr: float = 5e-4
    min_lr_ratio: float = 0.0
    warmup_steps: int = 100
    weight_decay: float = 0.2
    betas: list[float] = field(default_factory=lambda: [0.9, 0.98])
    eps: float = 1e-6
    grad_clip: float | None = 1.0

    def __post_init__(self) -> None:
        check_positive(self, "lr", "eps", "grad_clip")
        check_non_negative(self, "warmup_steps", "weight_decay")
        check_fraction(self, "min_lr_ratio")
        if len(self.betas) != 2:
            raise FieldError("betas", f"must be two numbers [beta1, beta2], got {self.betas}")
        check_fraction(self, "betas", high_open=True)


@dataclass
class LossConfig:
    """``kind``: ``"clip"`` (symmetric InfoNCE) or ``"siglip"``. ``local_loss``/``gather_with_grad`` as open_clip."""

    kind: Literal["clip", "siglip"] = "clip"
    local_loss: bool = True
    gather_with_grad: bool = True


@dataclass
class WandbConfig:
    """A Weights & Biases run (``pip install omniembed[wandb]``); ``mode``: ``online``, ``offline`` (synced later
    with ``wandb sync OUT/wandb``) or ``disabled``; None defers to ``WANDB_MODE``."""

    project: str = "omniembed"
    entity: str | None = None
    name: str | None = None
    """Default: the output folder's name."""
    tags: list[str] = field(default_factory=list)
    mode: Literal["online", "offline", "disabled"] | None = None


@dataclass
class TrainConfig:
    steps: int = 1000
    seed: int = 0
    accum_steps: int = 1
    """Split each process's batch into this many micro-batches, scored as one batch (:mod:`.accumulation`): the
    same loss and gradients at the activation memory of one micro-batch."""
    out_dir: str = "runs/default"
    precision: Literal["auto", "bf16", "fp32"] = "auto"
    """``auto`` (bf16 autocast on a GPU that runs bf16 in hardware — NVIDIA from Ampere —, else fp32), ``bf16`` or
    ``fp32``."""
    flush_denormal: bool = True
    """On the CPU, treat denormal floats as zero while training (``torch.set_flush_denormal``): arithmetic on them is
    many times slower on x86, and they carry nothing in fp32 training."""
    keep_freed_memory: bool = True
    """Keep the large blocks each step frees in the process for the next step instead of mapping them afresh
    (glibc only, :mod:`.heap`): every fresh page faults on its first write, which cost the OmniDigits binding on
    2 CPU cores an eighth of its CPU time and made a ViT-B/16 + text step (``tools/bench_train.py``, one thread)
    2–20 % slower eager, 1–15 % compiled (a wide run-to-run spread). The process then holds its peak memory for
    the whole run."""
    compile: bool = False
    """Compile each tower's forward with ``torch.compile`` (inductor), which fuses the elementwise work between the
    matmuls (norms, GELU, residual adds, autocast's casts) in forward and backward. The first steps pay for the
    compilation (a ViT-B/16 + 12-layer text pair: ~2 min on one CPU core, cold) and a new input shape recompiles
    (from the second, shapes are traced as dynamic); parameter names, checkpoints and the exported model are
    unchanged. A CPU step gains little, being matmul-bound (``tools/bench_train.py --compile``, ViT-B/16 + text, one
    thread: bf16 5 % faster than eager, fp32 2 % slower, within the run-to-run spread); a GPU step, whose matmuls
    are far cheaper, leaves the fusion more to gain (not measured here: no GPU was available)."""
    parallel: Literal["ddp", "fsdp"] = "ddp"
    """``ddp`` or ``fsdp`` (FSDP2 ``fully_shard`` per transformer block and per encoder)."""
    device: str = "auto"
    checkpoint_every: int = 1000
    keep_checkpoints: int = 2
    log_every: int = 10
    eval_every: int = 0
    eval_hook: str | None = None
    """``"package.module:function"``, called as ``fn(model, step) -> dict[str, float] | None`` on every process."""
    progress: bool = True
    tensorboard: bool = True
    wandb: WandbConfig | None = None
    """Also log to Weights & Biases, e.g. ``train.wandb={project: my-project}``."""
    max_nonfinite_steps: int = 0
    """Steps with a NaN/Inf loss or gradient norm that may be skipped (update dropped) before the run stops with an
    error naming the step and its samples; 0: the first one stops it (:mod:`.nonfinite`)."""

    def __post_init__(self) -> None:
        check_positive(self, "steps", "checkpoint_every", "keep_checkpoints", "log_every", "accum_steps")
        check_non_negative(self, "eval_every", "max_nonfinite_steps")


@dataclass
class ExperimentConfig:
    model: ModelSection = field(default_factory=ModelSection)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def validate(self) -> None:
        if not self.data.datasets:
            raise ConfigError("data.datasets is empty: a run needs at least one dataset")
        for i, ds in enumerate(self.data.datasets):
            where = f"data.datasets.{i} ({ds.name or 'unnamed'})"
            if not ds.shards:
                raise ConfigError(f"{where}: no shards given")
            if not ds.pairs or any(len(p) != 2 or p[0] == p[1] for p in ds.pairs):
                raise ConfigError(f"{where}: pairs must be a non-empty list of [anchor_side, other] modality pairs")
            if ds.loss_weights is not None and len(ds.loss_weights) != len(ds.pairs):
                raise ConfigError(f"{where}: loss_weights needs one entry per pair ({len(ds.pairs)})")
            batch = ds.batch_size or self.data.batch_size
            if batch % self.data.streams:
                raise ConfigError(f"{where}: batch size {batch} is not divisible by data.streams {self.data.streams}")
        for modality, spec in self.data.augment.items():
            build_transform(modality, spec)
        names = [ds.name for ds in self.data.datasets]
        if len(set(names)) != len(names):
            raise ConfigError(f"dataset names must be unique, got {names}")
        check_choices(self)  # the loader checked these already; a config changed in Python is checked here

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ExperimentConfig":
        config = from_dict(cls, data)
        for i, ds in enumerate(config.data.datasets):
            if not ds.name:
                ds.name = f"dataset{i}"
        config.validate()
        return config


RECIPES = Path(__file__).parent / "recipes"


def list_recipes() -> list[str]:
    """Names of the recipes shipped in ``omniembed/pretrain/recipes`` (usable in place of a path)."""
    return sorted(p.stem for p in RECIPES.glob("*.yaml"))


def recipe_path(name: str) -> Path:
    """The YAML file of the shipped recipe ``name``; :class:`ConfigError` listing the recipes when there is none."""
    path = RECIPES / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError(f"no shipped recipe named '{name}' (shipped: {', '.join(list_recipes())})")
    return path


def recipe_summary(name: str) -> str:
    """The first sentence of the comment a recipe opens with (what it trains; every shipped recipe has one)."""
    words = []
    for line in recipe_path(name).read_text(encoding="utf-8").splitlines():
        if not line.startswith("#") or line.startswith("#  "):  # the comment's end, or its example commands
            break
        words += line.lstrip("#").split()
    text = " ".join(words)
    end = re.search(r"[.;](\s|$)", text)
    return text[:end.start()] if end else text


def load_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> ExperimentConfig:
    """Read a YAML recipe — a path, or the name of a shipped recipe (``image_text_tiny``) — or start from the
    defaults when ``path`` is None, and apply ``key=value`` overrides."""
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file() and (RECIPES / f"{path}.yaml").is_file():
            path = RECIPES / f"{path}.yaml"
        if not path.is_file():
            raise ConfigError(f"{path}: config file not found (shipped recipes: {', '.join(list_recipes())})")
        try:
            data = yaml.load(path.read_text(), Loader=_YamlLoader) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML ({exc})") from exc
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: the top level must be a mapping")
    data = apply_overrides(data, overrides)
    try:
        return ExperimentConfig.from_dict(data)
    except ConfigError as exc:
        raise ConfigError(f"{path or '<overrides>'}: {exc}") from exc


def apply_overrides(data: dict[str, Any], overrides: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """A copy of ``data`` with each ``dotted.key=yaml_value`` set; missing mappings on the way are created."""
    data = copy.deepcopy(data)
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override '{item}' is not of the form key=value")
        try:
            value = _parse_value(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"override '{item}': value is not valid YAML ({exc})") from exc
        _set_dotted(data, key, value, item)
    return data


def _parse_value(text: str) -> Any:
    return yaml.load(text, Loader=_YamlLoader) if text else ""


class _YamlLoader(yaml.SafeLoader):
    """SafeLoader that reads ``1e-4`` (no dot) as a float, as YAML 1.2 and every user expect."""


_YamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*\.[0-9_]*(?:[eE][-+]?[0-9]+)?|[0-9][0-9_]*[eE][-+]?[0-9]+|\.[0-9_]+"
               r"(?:[eE][-+]?[0-9]+)?|\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"),
    list("-+0123456789."),
)


def _set_dotted(node: Any, key: str, value: Any, item: str) -> None:
    parts = key.split(".")
    # model.overrides holds dotted keys of its own: everything after it is one key
    if parts[:2] == ["model", "overrides"] and len(parts) > 2:
        parts = parts[:2] + [".".join(parts[2:])]
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise ConfigError(f"override '{item}': '{part}' is not an index of a list of {len(node)}")
            if last:
                node[int(part)] = value
            else:
                node = node[int(part)]
        elif isinstance(node, dict):
            if last:
                node[part] = value
            else:
                node = node.setdefault(part, {})
        else:
            raise ConfigError(f"override '{item}': '{'.'.join(parts[:i])}' is not a mapping or list")


def dump_yaml(config: ExperimentConfig) -> str:
    return yaml.safe_dump(config.to_dict(), sort_keys=False)


__all__ = [
    "ExperimentConfig", "ModelSection", "LoRAConfig", "DatasetConfig", "DataConfig", "OptimConfig", "LossConfig",
    "TrainConfig", "WandbConfig", "load_config", "list_recipes", "recipe_path", "recipe_summary", "apply_overrides", "dump_yaml",
]
