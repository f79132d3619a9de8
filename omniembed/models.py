"""Named model configs (``omniembed.create(name)``)."""

from __future__ import annotations

from .config import ModelConfig
from .registry import _MODALITIES, register_model


@register_model("omni-tiny")
def omni_tiny() -> ModelConfig:
    """Every registered modality at a tiny size (a few MB, fast on CPU), random init: for tests and examples."""
    modalities = {name: cls.tiny_config() for name, cls in sorted(_MODALITIES.items())}
    return ModelConfig(name="omni-tiny", embed_dim=64, anchor="image", modalities=modalities)
