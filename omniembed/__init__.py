"""OmniEmbed: one embedding space for images, text, audio, video and 3D point clouds.

>>> import omniembed
>>> model = omniembed.create("omni-tiny", seed=0)
>>> vectors = model.embed(["a photo of a dog", "dog.jpg"])   # float32 [2, 64], unit rows

Importing the package changes nothing global (no environment variables, logging or warnings filters) and imports
neither torch nor any optional dependency: the names below are imported on first use, so ``omniembed --help``
answers at once and a missing extra is reported only by the feature that needs it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from .errors import (
    CheckpointError,
    ConfigError,
    EmptyInputError,
    InputError,
    MissingExtraError,
    MissingInputError,
    MissingModalityError,
    OmniEmbedError,
    UnknownSuffixError,
    UnreadableInputError,
)

__version__ = "0.1.0"

_LAZY: dict[str, str] = {
    "create": ".api", "load": ".api", "list_models": ".api", "resolve_config": ".api",
    "ModelConfig": ".model_config", "EmbedFailure": ".embedding", "OmniEmbedModel": ".model", "Text": ".inputs",
    "list_modalities": ".registry", "Index": ".index",
}
"""Public name → the submodule that defines it, imported when the name is first used."""

__all__ = [
    "create", "load", "list_models", "list_modalities", "resolve_config", "ModelConfig", "OmniEmbedModel",
    "EmbedFailure", "Text", "OmniEmbedError", "ConfigError", "InputError", "MissingInputError", "UnreadableInputError",
    "UnknownSuffixError", "EmptyInputError", "MissingModalityError", "MissingExtraError", "CheckpointError", "Index",
    "__version__",
]

if TYPE_CHECKING:
    from .api import create, list_models, load, resolve_config
    from .model_config import ModelConfig
    from .embedding import EmbedFailure
    from .index import Index
    from .inputs import Text
    from .model import OmniEmbedModel
    from .registry import list_modalities


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value  # later lookups skip this function
        return value
    try:  # a submodule (omniembed.config, omniembed.modalities …), as when this package imported them eagerly
        return importlib.import_module(f".{name}", __name__)
    except ModuleNotFoundError as exc:
        if exc.name != f"{__name__}.{name}":
            raise
        raise AttributeError(f"module 'omniembed' has no attribute {name!r}") from None


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
