"""Typed configuration dataclasses and their strict JSON round trip.

The fields every modality config shares (trunk, head, logit scale) and the strict codec that reads any of these
dataclasses from JSON: ``to_dict``/``from_dict`` are exact inverses; an unknown key or a wrong type raises
:class:`~omniembed.errors.ConfigError` naming the dotted key path. A whole model's config, which needs the modality
registry to read, is :class:`omniembed.model_config.ModelConfig`.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from .errors import ConfigError

T = TypeVar("T")

DEFAULT_PROMPT = "text"
"""The modality zero-shot prompts and text queries go to when a config does not say (every config before it did)."""


class FieldError(ConfigError):
    """A config field holds a value outside its range. :func:`from_dict` prefixes the field with its path, so the
    message names the key as the user wrote it (``modalities.image.image_size must be positive, got -64``)."""

    def __init__(self, field: str, problem: str):
        self.field, self.problem = field, problem
        super().__init__(f"{field} {problem}")


def check_positive(config: Any, *names: str) -> None:
    """Raise :class:`FieldError` for the first of ``names`` that is not > 0 (None passes: "not set")."""
    for name in names:
        value = getattr(config, name)
        if value is not None and not value > 0:  # written so that NaN fails too
            raise FieldError(name, f"must be positive, got {value}")


def check_non_negative(config: Any, *names: str) -> None:
    """Raise :class:`FieldError` for the first of ``names`` that is below 0 (or NaN)."""
    for name in names:
        value = getattr(config, name)
        if value is not None and not value >= 0:
            raise FieldError(name, f"must be 0 or more, got {value}")


def choices_of(tp: Any) -> tuple[Any, ...] | None:
    """The allowed values of a ``Literal[...]`` type (also inside ``Literal[...] | None``), else None."""
    if typing.get_origin(tp) is typing.Literal:
        return typing.get_args(tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        inner = [choices_of(a) for a in typing.get_args(tp) if a is not type(None)]
        return inner[0] if len(inner) == 1 else None
    return None


def choice_error(path: str, value: Any, allowed: tuple[Any, ...]) -> ConfigError:
    """The one message for a value outside a ``Literal`` choice, naming the key path and every allowed value."""
    return ConfigError(f"{path} {value!r} is not one of {list(allowed)}")


def check_choices(config: Any, path: str = "") -> None:
    """Raise :func:`choice_error` for the first ``Literal``-typed field of dataclass ``config`` (or of one nested in
    it) holding another value: the loader checks JSON/YAML as it reads (:func:`from_dict`); this catches a config
    built in Python."""
    hints = typing.get_type_hints(type(config))
    for f in dataclasses.fields(config):
        value, key = getattr(config, f.name), f"{path}.{f.name}" if path else f.name
        allowed = choices_of(hints[f.name])
        if allowed is not None and value is not None and value not in allowed:
            raise choice_error(key, value, allowed)
        if dataclasses.is_dataclass(value):
            check_choices(value, key)


def check_fraction(config: Any, name: str, high_open: bool = False) -> None:
    """Raise :class:`FieldError` unless 0 ≤ ``name`` ≤ 1 (< 1 with ``high_open``); a list is checked item-wise."""
    value = getattr(config, name)
    for v in value if isinstance(value, (list, tuple)) else [value]:
        if not (0 <= v < 1 if high_open else 0 <= v <= 1):
            raise FieldError(name, f"must be in [0, {'1)' if high_open else '1]'}, got {value}")


@dataclass
class TransformerConfig:
    """A pre-LayerNorm transformer trunk.

    ``bias_kv`` appends one learned key and one learned value token to every attention (ImageBind's audio,
    depth, thermal and IMU trunks); ``causal`` masks future tokens (text); ``pre_norm`` puts a LayerNorm
    before the first block (ImageBind's vision trunk).
    """

    width: int = 64
    depth: int = 2
    heads: int = 4
    mlp_ratio: float = 4.0
    drop_path: float = 0.0
    ln_eps: float = 1e-6
    bias_kv: bool = False
    causal: bool = False
    pre_norm: bool = False
    grad_checkpointing: bool = False

    def __post_init__(self) -> None:
        check_positive(self, "width", "depth", "heads", "mlp_ratio", "ln_eps")
        check_fraction(self, "drop_path")


@dataclass
class HeadConfig:
    """Pool the trunk's tokens and project to the shared dim.

    ``pool``: ``"cls"`` (token 0), ``"eos"`` (the token at ``argmax`` of the token ids, CLIP text),
    ``"mean"`` (mean of all tokens but CLS) or ``"cls_max"`` (concat of CLS and max over the others, Point-BERT).
    """

    pool: Literal["cls", "eos", "mean", "cls_max"] = "cls"
    norm: bool = True
    norm_eps: float = 1e-6
    bias: bool = False


@dataclass
class LogitScaleConfig:
    """The per-modality logit scale (inverse temperature) applied to cosine similarities in the loss."""

    init: float = 1 / 0.07
    learnable: bool = True
    max: float = 100.0


@dataclass
class ModalityConfig:
    """Fields every modality config has. Subclasses add loading/preprocessing and stem fields."""

    trunk: TransformerConfig = field(default_factory=TransformerConfig)
    head: HeadConfig = field(default_factory=HeadConfig)
    logit_scale: LogitScaleConfig = field(default_factory=LogitScaleConfig)


def to_dict(config: Any, untagged: bool = False) -> dict[str, Any]:
    """A dataclass as plain JSON-able data (tuples become lists; a tagged config gains its ``kind``).

    ``untagged`` spells each tagged field as configs did before it was tagged — one key per alternative, the
    unchosen ones null (``timm: {...}, open_clip: null``) — the stable form a model's fingerprint hashes.
    """
    return json.loads(json.dumps(_plain(config, untagged)))


def _plain(value: Any, untagged: bool) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        tag = tag_of(type(value))
        hints = typing.get_type_hints(type(value)) if untagged else {}
        fields: dict[str, Any] = {}
        for f in dataclasses.fields(value):
            item, choices = getattr(value, f.name), tagged_choices(hints.get(f.name))
            if choices is None:
                fields[f.name] = _plain(item, untagged)
            else:
                fields.update({t: _plain(item, untagged) if isinstance(item, c) else None for t, c in choices.items()})
        return {TAG_KEY: tag, **fields} if tag is not None and not untagged else fields
    if isinstance(value, dict):
        return {k: _plain(v, untagged) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v, untagged) for v in value]
    return value


TAG_KEY = "kind"
"""The key naming which alternative a tagged config is: ``tower: {kind: timm, name: resnet10t}``."""


def tag_of(cls: Any) -> str | None:
    """The ``TAG`` a config dataclass declares (``TAG: ClassVar[str] = "timm"``) as one of several alternatives."""
    return cls.__dict__.get("TAG") if isinstance(cls, type) else None


def tagged_choices(tp: Any) -> dict[str, type] | None:
    """``A | B [| None]`` where every alternative is a tagged dataclass → {tag: class}; else None."""
    if typing.get_origin(tp) not in (typing.Union, types.UnionType):
        return None
    options = [a for a in typing.get_args(tp) if a is not type(None)]
    tags = {tag_of(a): a for a in options}
    return tags if None not in tags else None


def _from_tagged(choices: dict[str, type], value: Any, path: str) -> Any:
    if not isinstance(value, dict):
        raise ConfigError(f"{path}: expected an object with '{TAG_KEY}' ({' | '.join(choices)}), got "
                          f"{type(value).__name__}")
    if TAG_KEY not in value:
        raise ConfigError(f"{path}: needs '{TAG_KEY}', one of {list(choices)}")
    tag = value[TAG_KEY]
    if tag not in choices:
        raise choice_error(f"{path}.{TAG_KEY}", tag, tuple(choices))
    return from_dict(choices[tag], {k: v for k, v in value.items() if k != TAG_KEY}, path)


def _upgrade_tagged(cls: type, data: dict[str, Any], hints: dict[str, Any], path: str) -> dict[str, Any]:
    """Configs written before a tagged field existed named the alternative as a key of its own (``timm: {...}``,
    ``tdnn: null``) where the field now says ``tower: {kind: timm, ...}``: read them as the tagged form, refusing
    two alternatives at once."""
    names = {f.name for f in dataclasses.fields(cls)}
    for name in names:
        choices = tagged_choices(hints[name])
        legacy = [t for t in (choices or {}) if t in data and t not in names]
        if not legacy:
            continue
        data = dict(data)
        given = {t: data.pop(t) for t in legacy}
        given = {t: v for t, v in given.items() if v is not None}
        where = f"{path}." if path else ""
        if len(given) > 1 or (given and data.get(name) is not None):
            chosen = [f"{where}{t}" for t in given] + ([f"{where}{name}"] if data.get(name) is not None else [])
            raise ConfigError(f"{' and '.join(chosen)} each choose the encoder: set one {where}{name}: "
                              f"{{{TAG_KEY}: {' | '.join(choices)}, ...}}")
        for tag, value in given.items():
            data[name] = {TAG_KEY: tag, **value} if isinstance(value, dict) else value
    return data


def from_dict(cls: type[T], data: Any, path: str = "") -> T:
    """Build dataclass ``cls`` from ``data`` strictly: unknown keys and wrong types raise ConfigError."""
    if not isinstance(data, dict):
        raise ConfigError(f"{path or cls.__name__}: expected an object, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    data = _upgrade_tagged(cls, data, hints, path)
    unknown = set(data) - names
    if unknown:
        where = f" in {path}" if path else ""
        raise ConfigError(
            f"unknown config key(s){where}: {', '.join(sorted(unknown))} (valid: {', '.join(sorted(names))})"
        )
    kwargs = {k: _convert(hints[k], v, f"{path}.{k}" if path else k) for k, v in data.items()}
    try:
        return cls(**kwargs)
    except FieldError as exc:  # raised by the dataclass's own checks (__post_init__), which know no path
        raise FieldError(f"{path}.{exc.field}" if path else exc.field, exc.problem) from None


def replace_path(config: T, dotted: str, value: Any) -> T:
    """Return a copy of ``config`` with the field at ``dotted`` (e.g. ``"trunk.depth"``) set to ``value``."""
    head, _, rest = dotted.partition(".")
    if not dataclasses.is_dataclass(config) or head not in {f.name for f in dataclasses.fields(config)}:
        raise ConfigError(f"unknown config key '{dotted}' for {type(config).__name__}")
    if rest:
        value = replace_path(getattr(config, head), rest, value)
    else:
        value = _convert(typing.get_type_hints(type(config))[head], value, dotted)
    return dataclasses.replace(config, **{head: value})


def _convert(tp: Any, value: Any, path: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Literal:
        if value not in args:
            raise choice_error(path, value, args)
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        tagged = tagged_choices(tp)
        if tagged is not None:
            return _from_tagged(tagged, value, path)
        non_none = [a for a in args if a is not type(None)]
        if len(non_none) == 1:  # an optional value: its own error says more than "matches none of"
            return _convert(non_none[0], value, path)
        errors = []
        for a in non_none:
            try:
                return _convert(a, value, path)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(f"{path}: {value!r} matches none of {tp}: {'; '.join(errors)}")
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, path)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{path}: expected a list, got {type(value).__name__}")
        item_tp = args[0] if args else Any
        return tuple(_convert(item_tp, v, f"{path}[{i}]") for i, v in enumerate(value))
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{path}: expected a list, got {type(value).__name__}")
        return [_convert(args[0], v, f"{path}[{i}]") for i, v in enumerate(value)] if args else list(value)
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected an object, got {type(value).__name__}")
        return {k: _convert(args[1], v, f"{path}.{k}") for k, v in value.items()} if args else dict(value)
    if tp is Any:
        return value
    return _coerce(tp, value, path)


def _coerce(tp: type, value: Any, path: str) -> Any:
    if tp is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if tp is bool and not isinstance(value, bool):
        raise ConfigError(f"{path}: expected true/false, got {value!r}")
    if tp is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise ConfigError(f"{path}: expected an integer, got {value!r}")
    if not isinstance(value, tp):
        raise ConfigError(f"{path}: expected {tp.__name__}, got {type(value).__name__} {value!r}")
    return value
