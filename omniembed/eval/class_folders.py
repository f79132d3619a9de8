"""A labelled test set in the ModelNet40 layout: one folder per class, the class's files inside.

``DATA/<class>/…`` or, as ModelNet40 ships, ``DATA/<class>/<split>/…`` (pass ``split="test"``). The class name
is the folder's name with ``_`` read as a space (``night_stand`` → "night stand", the names ULIP prompts with),
unless ``class_names`` gives them in sorted-folder order. Only files a modality of the model reads are taken;
``modality`` narrows that to one. Prompt templates come from a file (:func:`read_templates`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from ..errors import ConfigError, InputError, MissingInputError
from .runner import EvalSet

if TYPE_CHECKING:
    from ..model import OmniEmbedModel


def class_folders(root: str | Path) -> list[Path]:
    """The class folders of ``root``, sorted by name (hidden folders left out)."""
    root = Path(root)
    if not root.is_dir():
        raise MissingInputError(str(root), "evaluation folder not found")
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def looks_like_class_folders(root: str | Path) -> bool:
    """True for a folder of sub-folders without ``.cls`` label files (the ModelNet40 layout)."""
    root = Path(root)
    return root.is_dir() and bool(class_folders(root)) and not any(root.rglob("*.cls"))


def eval_set_from_class_folders(root: str | Path, model: "OmniEmbedModel", split: str | None = None,
                                class_names: Sequence[str] | None = None, modality: str | None = None) -> EvalSet:
    """Every file under ``root/<class>[/<split>]`` that ``model`` reads, labelled by its class folder."""
    folders = class_folders(root)
    if not folders:
        raise InputError(str(root), "has no class folders (expected ROOT/<class>/… as in ModelNet40)")
    names = list(class_names) if class_names is not None else [f.name.replace("_", " ") for f in folders]
    if len(names) != len(folders):
        raise ConfigError(f"{root}: {len(folders)} class folders but {len(names)} class names")
    items: dict[str, list[str]] = {}
    labels: dict[str, list[int]] = {}
    for label, folder in enumerate(folders):
        where = folder / split if split else folder
        if not where.is_dir():
            continue  # a class without this split contributes no samples
        for path in sorted(p for p in where.rglob("*") if p.is_file()):
            found = model.modality_of(path)
            if found is None or found == model.prompt or (modality is not None and found != modality):
                continue
            items.setdefault(found, []).append(str(path))
            labels.setdefault(found, []).append(label)
    if not items:
        raise InputError(str(root), f"no file under its class folders{f' (split {split})' if split else ''} is "
                                    f"read by the model's {'/'.join([modality] if modality else model.modalities)} "
                                    f"encoder")
    return EvalSet(items=items, labels={m: np.asarray(v) for m, v in labels.items()}, class_names=names)


def read_templates(path: str | Path, key: str | None = None) -> list[str]:
    """Prompt templates with a ``{}`` for the class name: a text file (one per line) or a ``.json`` list, or a
    JSON object of lists picked by ``key`` (ULIP's ``templates.json`` holds ``modelnet40_64``)."""
    templates = _read_list(Path(path), key, "template")
    bad = [t for t in templates if "{}" not in t]
    if not templates or bad:
        raise ConfigError(f"{path}: every template needs a '{{}}' for the class name"
                          + (f" (not: {bad[:3]})" if bad else " (the file holds none)"))
    return templates


def read_class_names(path: str | Path, key: str | None = None) -> list[str]:
    """Class names in sorted-folder order: a text file (one per line) or a ``.json`` list, or a JSON object of
    lists picked by ``key`` (ULIP's ``labels.json`` holds ``modelnet40``)."""
    return _read_list(Path(path), key, "class name")


def _read_list(path: Path, key: str | None, what: str) -> list[str]:
    if not path.is_file():
        raise ConfigError(f"{path}: {what} file not found")
    text = path.read_text(encoding="utf-8")
    if path.suffix != ".json":
        return [line.strip() for line in text.splitlines() if line.strip()]
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: not valid JSON ({exc})") from exc
    if isinstance(data, dict):
        if key not in data:
            raise ConfigError(f"{path}: holds {what} lists {sorted(data)}; pick one with its key"
                              + (f" ('{key}' is not one)" if key else ""))
        data = data[key]
    if not isinstance(data, list) or not all(isinstance(item, str) for item in data):
        raise ConfigError(f"{path}: expected a list of {what} strings")
    return data
