"""``model.embed``: route mixed inputs to their modality, batch by size, restore input order.

Inputs may be file paths (``str`` with a known suffix or ``os.PathLike``; the modality comes from the suffix),
folders (replaced by the files under them), strings (text; ``Text("…")`` says so whatever it looks like), or
raw signals (arrays, tensors, PIL images) with ``modality=`` given; :mod:`omniembed.inputs` has the exact rules. Each modality's inputs
are sorted by size, cut into batches, loaded and preprocessed per batch (so memory stays bounded), encoded and
written back to their input rows.
"""

from __future__ import annotations

import contextlib
import os
import sys
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import torch
from tqdm.auto import tqdm

from .devices import resolve_device
from .encoder import to_device
from .errors import (ConfigError, EmptyInputError, InputError, MissingInputError, NonFiniteEmbeddingError,
                     OmniEmbedError, UnknownSuffixError)
from .inputs import Kind, Text, expand_folders, kind_of, warn_if_folder_name
from .nn.native_dtypes import warn_if_emulated
from .nn.precision import CastCache
from .registry import modality_for_suffix, path_suffix

if TYPE_CHECKING:
    from .model import OmniEmbedModel

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
OUTPUTS = ("numpy", "torch", "list")
ON_ERROR = ("raise", "skip")
_CAST_COPIES: "weakref.WeakKeyDictionary[OmniEmbedModel, CastCache]" = weakref.WeakKeyDictionary()
"""Per model: its encoders cast once to bf16/fp16 (:func:`~omniembed.nn.precision.cast_for_inference`)."""


@dataclass(frozen=True)
class EmbedFailure:
    """An input that could not be embedded: its position in the input list, what it was, and why."""

    index: int
    source: str
    reason: str

    def __str__(self) -> str:
        return f"[{self.index}] {self.source}: {self.reason}"


def embed(model: "OmniEmbedModel", inputs: Any, modality: str | None = None, batch_size: int = 32,
          device: str | torch.device | None = None, normalize: bool = True, to: str = "numpy",
          progress: bool | None = None, on_error: str = "raise", precision: str = "fp32",
          parts: bool = False) -> Any:
    """Embed ``inputs`` with ``model``.

    Returns float32 rows [n, E] in input order (``to``: "numpy", "torch" or "list"). With ``normalize`` the
    rows are unit vectors; without, they are the heads' raw projections (mean over clips). With
    ``on_error="skip"`` the result is ``(rows of the good inputs in input order, [EmbedFailure, ...])``;
    with ``"raise"`` the first bad input raises its :class:`~omniembed.errors.InputError`.
    ``precision`` "bf16"/"fp16" runs the encoders in that dtype under autocast (CPU or GPU): their weights are
    cast once and kept for later calls until they change (:func:`~omniembed.nn.precision.cast_for_inference`:
    transformer blocks wholly in the low dtype, other linear/conv weights cast, the rest fp32), not re-cast on
    every batch; outputs stay float32.
    ``parts=True`` (for composite encoders such as video) returns ``{part: rows [n, E]}`` instead of one array,
    e.g. ``{"video": fused, "frames": frames only, "audio": audio track only}``; a part an input lacks is NaN.
    """
    _check_choice("to", to, OUTPUTS)
    _check_choice("on_error", on_error, ON_ERROR)
    _check_choice("precision", precision, tuple(PRECISIONS))
    if batch_size < 1:
        raise ConfigError(f"batch_size must be ≥ 1, got {batch_size}")
    items = expand_folders(_as_list(inputs), model.modality_of, modality, model.prompt)
    if not items:
        raise EmptyInputError("inputs", "nothing to embed (empty list)")
    if modality is not None:
        model.processor(modality)  # raises MissingModalityError early
    if parts and not normalize:
        raise ConfigError("parts=True gives unit vectors per part; it cannot be combined with normalize=False")

    failures: list[EmbedFailure] = []
    groups: dict[str, list[int]] = {}
    for i, item in enumerate(items):
        try:
            groups.setdefault(_route(model, item, modality), []).append(i)
        except InputError as exc:
            _fail(failures, on_error, i, exc)
    items = [_as_input(item, modality, model.prompt) for item in items]

    dev = resolve_device(device) or model.device
    if dev != model.device:
        model.to(dev)
    dtype = PRECISIONS[precision]
    if dtype is not None:
        warn_if_emulated(dev, dtype, f"precision={precision!r}", "the embedding", "precision='fp32'")
    out: dict[str, torch.Tensor] = {}
    done = torch.zeros(len(items), dtype=torch.bool)
    show = progress if progress is not None else (sys.stderr.isatty() and len(items) > batch_size)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode(), tqdm(total=len(items), disable=not show, desc="embed", unit="input") as bar:
            for mod, indices in groups.items():
                proc = model.processor(mod)
                order = sorted(indices, key=lambda i: -proc.sort_key(items[i]))
                for start in range(0, len(order), batch_size):
                    chunk = order[start:start + batch_size]
                    good, samples = [], []
                    for i in chunk:
                        try:
                            samples.append(proc.prepare(items[i]))
                            good.append(i)
                        except InputError as exc:
                            _fail(failures, on_error, i, exc)
                    if samples:
                        batch = proc.collate(samples)
                        encoded = (_encode_parts(model, mod, batch, dev, precision) if parts else
                                   {"": _encode(model, mod, batch, dev, normalize, precision)})
                        finite = _finite_rows(encoded, mod)
                        for i, ok in zip(good, finite.tolist()):
                            if not ok:
                                _fail(failures, on_error, i, NonFiniteEmbeddingError(
                                    _source(items[i]), "the model gave a non-finite (NaN or Inf) embedding: its "
                                                       "weights hold NaN/Inf, or this input's values overflow it"))
                        good = [i for i, ok in zip(good, finite.tolist()) if ok]
                        for name, vectors in encoded.items():
                            rows = out.setdefault(name, torch.full((len(items), model.embed_dim), float("nan")))
                            rows[good] = vectors[finite.to(vectors.device)].float().cpu()
                        done[good] = True
                    bar.update(len(chunk))
    finally:
        model.train(was_training)

    if not out:  # every input failed
        out[""] = torch.zeros(len(items), model.embed_dim)
    if on_error == "skip":
        out = {name: rows[done] for name, rows in out.items()}
    result = {name: _convert(rows, to) for name, rows in out.items()}
    if not parts:
        result = result[""]
    if on_error == "skip":
        return result, sorted(failures, key=lambda f: f.index)
    return result


def _encode(model: "OmniEmbedModel", modality: str, batch: Any, device: torch.device, normalize: bool,
            precision: str) -> torch.Tensor:
    encoder, autocast = _encoder_at(model, modality, precision, device)
    with autocast:
        batch = to_device(batch, device)
        if normalize:
            return _unit_fp32(encoder(batch), precision)
        return encoder.features(batch).mean(dim=1)


def _finite_rows(encoded: dict[str, torch.Tensor], modality: str) -> torch.Tensor:
    """bool [B]: whether each input's embedding is finite — the whole one, or with ``parts`` the part named after
    the modality (other parts may be NaN by design: a video without an audio track has no audio part)."""
    whole = encoded.get("", encoded.get(modality, next(iter(encoded.values()))))
    return torch.isfinite(whole).all(dim=1).cpu()


def _encode_parts(model: "OmniEmbedModel", modality: str, batch: Any, device: torch.device,
                  precision: str) -> dict[str, torch.Tensor]:
    """{part: unit rows [B, E]} from an encoder with :attr:`~omniembed.encoder.Encoder.part_names`."""
    if not model.encoder(modality).part_names:
        raise ConfigError(f"the {modality} encoder has no parts; embed it with parts=False")
    encoder, autocast = _encoder_at(model, modality, precision, device)
    with autocast:
        return {name: _unit_fp32(rows, precision) for name, rows in encoder.parts(to_device(batch, device)).items()}


def _unit_fp32(rows: torch.Tensor, precision: str) -> torch.Tensor:
    """Unit rows [B, E] normalised in a low dtype are unit only to its ~3 digits: renormalise them in fp32."""
    return rows if PRECISIONS[precision] is None else torch.nn.functional.normalize(rows.float(), dim=-1)


def _encoder_at(model: "OmniEmbedModel", modality: str, precision: str,
                device: torch.device) -> tuple[torch.nn.Module, contextlib.AbstractContextManager]:
    """The encoder to run at ``precision`` and the autocast to run it under: the model's own in fp32, else its
    copy cast to the low dtype once (kept per model, remade when the weights change)."""
    dtype = PRECISIONS[precision]
    if dtype is None:
        return model.encoder(modality), contextlib.nullcontext()
    copies = _CAST_COPIES.setdefault(model, CastCache())
    return copies.get((modality, dtype), model.encoder(modality), dtype), torch.autocast(device.type, dtype=dtype)


def _route(model: "OmniEmbedModel", item: Any, modality: str | None) -> str:
    """The modality an input goes to (the rules of :mod:`omniembed.inputs`): the model's prompt modality for
    ``Text``, else the explicit one, else the file suffix, else the processor that accepts the object (text for
    plain strings)."""
    kind = kind_of(item, modality, model.prompt)
    if isinstance(item, Text):
        if model.prompt not in model.modalities:
            raise InputError(_source(item), f"the model has no '{model.prompt}' encoder for texts (it has: "
                                            f"{', '.join(model.modalities)})")
        return model.prompt
    if modality is not None:
        return modality
    if kind is Kind.FOLDER:
        if not os.path.isdir(os.path.expanduser(item)):
            raise MissingInputError(str(item), "folder not found")
        suffixes = sorted(s for m in model.modalities for s in model.processor(m).suffixes)
        raise EmptyInputError(str(item), f"folder holds no file that the model reads ({', '.join(suffixes)})")
    if kind is Kind.FILE:
        suffix = path_suffix(item)
        found = modality_for_suffix(suffix, among=model.modalities)
        if found is None:
            known = modality_for_suffix(suffix)
            reason = (f"the model has no '{known}' encoder" if known else
                      f"unknown file suffix '{suffix or '(none)'}'")
            raise UnknownSuffixError(str(item), reason)
        return found
    if kind is Kind.TEXT:
        warn_if_folder_name(item)
        prompt = model.processors.get(model.prompt)
        if prompt is not None and prompt.accepts(item):
            return model.prompt
    for name, proc in model.processors.items():
        if proc.accepts(item):
            return name
    raise InputError(_describe(item), "cannot tell its modality: pass modality=... for raw arrays and tensors")


def _as_input(item: Any, modality: str | None, prompt: str) -> Any:
    """What a processor is given: a ``Text``'s string, a file named by a string as a ``Path`` (so a ``.txt`` path
    is read, not embedded as its own name), anything else as it is."""
    if isinstance(item, Text):
        return item.text
    if isinstance(item, str) and kind_of(item, modality, prompt) is Kind.FILE:
        return Path(item)
    return item


def _as_list(inputs: Any) -> list[Any]:
    """A list or tuple is many inputs; anything else (a path, a string, one array) is one input."""
    return list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]


def _fail(failures: list[EmbedFailure], on_error: str, index: int, exc: OmniEmbedError) -> None:
    if on_error == "raise":
        raise exc
    source = getattr(exc, "source", str(index))
    failures.append(EmbedFailure(index, source, getattr(exc, "reason", str(exc))))


def _convert(rows: torch.Tensor, to: str) -> Any:
    if to == "torch":
        return rows
    if to == "list":
        return rows.tolist()
    return rows.numpy()


def _check_choice(name: str, value: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ConfigError(f"{name}={value!r} is not one of {', '.join(choices)}")


def _source(item: Any) -> str:
    """How an error names an input: a path as itself, a text by its first words, anything else by type and shape."""
    if isinstance(item, Text):
        item = item.text
    if isinstance(item, os.PathLike):
        return str(item)
    if isinstance(item, str):
        return item if len(item) <= 60 else repr(item[:57] + "...")
    return _describe(item)


def _describe(item: Any) -> str:
    shape = getattr(item, "shape", None)
    return f"<{type(item).__name__}{' ' + str(tuple(shape)) if shape is not None else ''}>"
