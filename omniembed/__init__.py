"""OmniEmbed: one embedding space for images, text, audio, video and 3D point clouds.

>>> import omniembed
>>> model = omniembed.create("omni-tiny", seed=0)
>>> vectors = model.embed(["a photo of a dog", "dog.jpg"])   # float32 [2, 64], unit rows
"""

import os as _os

_os.environ.setdefault("HF_HUB_OFFLINE", "1")
_os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from .api import create, list_models, load, resolve_config  # noqa: E402
from .config import ModelConfig  # noqa: E402
from .embedding import EmbedFailure  # noqa: E402
from .errors import (  # noqa: E402
    CheckpointError,
    ConfigError,
    EmptyInputError,
    InputError,
    MissingInputError,
    MissingModalityError,
    OmniEmbedError,
    UnknownSuffixError,
    UnreadableInputError,
)
from .inputs import Text  # noqa: E402
from .model import OmniEmbedModel  # noqa: E402
from .registry import list_modalities  # noqa: E402

__version__ = "0.1.0"
__all__ = [
    "create", "load", "list_models", "list_modalities", "resolve_config", "ModelConfig", "OmniEmbedModel",
    "EmbedFailure", "Text", "OmniEmbedError", "ConfigError", "InputError", "MissingInputError", "UnreadableInputError",
    "UnknownSuffixError", "EmptyInputError", "MissingModalityError", "CheckpointError", "Index",
]


def __getattr__(name: str):
    # the retrieval index pulls in faiss and SQLite: imported on first use so `import omniembed` stays fast
    if name == "Index":
        from .index import Index

        return Index
    raise AttributeError(f"module 'omniembed' has no attribute {name!r}")
