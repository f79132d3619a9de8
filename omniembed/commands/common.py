"""Helpers shared by subcommands."""

from __future__ import annotations

from ..model import OmniEmbedModel


def open_model(spec: str, device: str | None = None) -> OmniEmbedModel:
    """What ``--model`` names: a checkpoint directory, a pretrained model (``imagebind_huge``,
    ``open_clip:ARCH/TAG``, ``hf:ORG/REPO[@rev]``) or a registered config (random init, seed 0)."""
    from ..api import open_model as open_spec

    return open_spec(spec, device=device)
