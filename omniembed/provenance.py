"""Where a model's weights came from and under which licence: ``source.json`` in a checkpoint directory.

The record travels with the weights: ``model.save`` writes it, ``OmniEmbedModel.load`` reads it back into
``model.source`` and shows its ``notice`` (e.g. a non-commercial licence) as a :class:`LicenceNotice` warning.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

from .errors import CheckpointError

SOURCE_FILE = "source.json"


class LicenceNotice(UserWarning):
    """The weights being loaded or converted carry licence terms the user must know (``warnings`` category, so a
    user who has read it can filter it)."""


def read_source(directory: str | os.PathLike) -> dict[str, Any] | None:
    """The ``source.json`` record of a checkpoint directory, or None when it has none."""
    path = Path(directory) / SOURCE_FILE
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(record, dict):
        raise CheckpointError(f"{path}: expected a JSON object (name, url, sha256, licence)")
    return record


def announce(record: dict[str, Any] | None, action: str) -> None:
    """Warn with the record's licence notice, if it has one; ``action`` says what is happening ("loading")."""
    if record and record.get("notice"):
        warnings.warn(f"{action} {record.get('name') or record.get('url')}: {record['notice']}", LicenceNotice,
                      stacklevel=3)
