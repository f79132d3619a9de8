"""A converter's ``--config`` file: a JSON object of the constructor arguments tensor shapes do not show."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import ConfigError


def read_arguments(path: Path, peer: str, example: str) -> dict[str, Any]:
    """The JSON object in ``path``; a :class:`ConfigError` naming the file otherwise. ``peer`` names whose
    arguments they are ("ULIP"), ``example`` a few of their names for the message."""
    try:
        values = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: {peer} arguments file not found") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: expected a JSON object of {peer} arguments ({example})")
    return values
