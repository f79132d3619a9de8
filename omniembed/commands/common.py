"""Helpers shared by subcommands."""

from __future__ import annotations

from pathlib import Path

from ..model import OmniEmbedModel


def open_model(spec: str, device: str | None = None) -> OmniEmbedModel:
    """A checkpoint directory, or a registered model name (random init, seed 0)."""
    from ..api import create, load

    if Path(spec).is_dir():
        return load(spec, device=device)
    return create(spec, seed=0, device=device)
