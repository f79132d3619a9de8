"""Helpers shared by subcommands."""

from __future__ import annotations

from pathlib import Path

from ..errors import MissingInputError
from ..model import OmniEmbedModel


def require_paths(paths: list[str]) -> None:
    """Raise :class:`MissingInputError` naming the command-line paths that do not exist, before any work (a
    misspelt folder must not give an empty result and exit 0)."""
    missing = [p for p in paths if not Path(p).exists()]
    if missing:
        raise MissingInputError(", ".join(missing), "no such file or folder")


def open_model(spec: str, device: str | None = None) -> OmniEmbedModel:
    """A checkpoint directory, or a registered model name (random init, seed 0)."""
    from ..api import create, load

    if Path(spec).is_dir():
        return load(spec, device=device)
    return create(spec, seed=0, device=device)
