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
    """What ``--model`` names: a checkpoint directory, a pretrained model (``imagebind_huge``,
    ``open_clip:ARCH/TAG``, ``hf:ORG/REPO[@rev]``) or a registered config (random init, seed 0)."""
    from ..api import open_model as open_spec

    return open_spec(spec, device=device)
