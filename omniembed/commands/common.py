"""Helpers shared by subcommands."""

from __future__ import annotations

from pathlib import Path

from ..errors import MissingInputError


def require_paths(paths: list[str]) -> None:
    """Raise :class:`MissingInputError` naming the command-line paths that do not exist, before any work (a
    misspelt folder must not give an empty result and exit 0)."""
    missing = [p for p in paths if not Path(p).exists()]
    if missing:
        raise MissingInputError(", ".join(missing), "no such file or folder")

