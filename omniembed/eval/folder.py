"""A labelled test set read from a folder: files sharing a stem form one sample, its class in ``STEM.cls``.

This is the layout ``omniembed data omnidigits`` writes (``test/00042.png``, ``test/00042.wav``,
``test/00042.cls`` …) and the simplest one to make by hand for any labelled multi-modal data. A ``.cls`` file
holds the class index (0-based) or the class name. An optional ``STEM.src`` (JSON ``{modality: source name}``)
says where each file of the sample came from, so scores can be grouped by source. Text files (``.txt``) are
captions: they are not scored as a modality (zero-shot prompts come from the class names), since a caption names
its class.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import InputError, MissingInputError
from .runner import EvalSet

if TYPE_CHECKING:
    from ..model import OmniEmbedModel

LABEL_SUFFIX, SOURCE_SUFFIX = ".cls", ".src"


def eval_set_from_folder(folder: str | Path, model: "OmniEmbedModel", class_names: list[str],
                         skip: tuple[str, ...] | None = None) -> EvalSet:
    """Every file under ``folder`` whose suffix a modality of ``model`` reads, labelled by its sample's ``.cls``.

    ``skip`` leaves modalities out (default: the model's prompt modality — its captions are no test items, the
    class prompts stand in for them).

    Files of a sample without a ``.cls`` file are left out; a ``.cls`` naming an unknown class raises
    :class:`~omniembed.errors.InputError` naming the file.
    """
    folder = Path(folder)
    skip = (model.prompt,) if skip is None else skip
    if not folder.is_dir():
        raise MissingInputError(str(folder), "evaluation folder not found")
    by_name = {name: i for i, name in enumerate(class_names)}
    labels: dict[str, int] = {}
    origins: dict[str, dict[str, str]] = {}
    members: dict[str, list[Path]] = defaultdict(list)
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        stem = str(path.relative_to(folder)).split(".", 1)[0]
        if path.suffix == LABEL_SUFFIX:
            labels[stem] = _read_label(path, by_name)
        elif path.suffix == SOURCE_SUFFIX:
            origins[stem] = _read_sources(path)
        else:
            members[stem].append(path)
    items: dict[str, list[str]] = defaultdict(list)
    item_labels: dict[str, list[int]] = defaultdict(list)
    item_sources: dict[str, list[str]] = defaultdict(list)
    for stem in sorted(labels):
        for path in members.get(stem, []):
            modality = model.modality_of(path)
            if modality is None or modality in skip:
                continue
            items[modality].append(str(path))
            item_labels[modality].append(labels[stem])
            item_sources[modality].append(origins.get(stem, {}).get(modality, ""))
    return EvalSet(items=dict(items), labels={m: np.asarray(v) for m, v in item_labels.items()},
                   class_names=list(class_names),
                   sources={m: v for m, v in item_sources.items() if any(v)})


def _read_sources(path: Path) -> dict[str, str]:
    try:
        origins = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(str(path), f"not a JSON object of sources ({exc})") from None
    if not isinstance(origins, dict) or not all(isinstance(v, str) for v in origins.values()):
        raise InputError(str(path), 'expected a JSON object {"modality": "source name"}')
    return origins


def _read_label(path: Path, by_name: dict[str, int]) -> int:
    text = path.read_text(encoding="utf-8").strip()
    if text.isdigit() and int(text) < len(by_name):
        return int(text)
    if text in by_name:
        return by_name[text]
    raise InputError(str(path), f"label '{text}' is neither a class index below {len(by_name)} nor a class name")
