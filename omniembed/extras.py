"""Optional dependencies: which extra installs each module, and imports that name the extra when it is missing.

The core (image, text, audio, the embedding API, checkpoints, converters) imports only what ``pip install
omniembed`` installs. Everything else is imported where it is used, through :func:`require`, so ``import
omniembed`` works without any extra and a missing one surfaces as a :class:`MissingExtraError` that says what to
install. ``pyproject.toml``'s ``[project.optional-dependencies]`` must agree with :data:`EXTRAS`.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from .errors import MissingExtraError

EXTRAS: dict[str, str] = {
    "open3d": "pointcloud",
    "fpsample": "pointcloud",
    "decord": "video",
    "faiss": "index",
    "pyarrow": "index",
    "threadpoolctl": "index",
    "yaml": "train",
    "webdataset": "train",
    "braceexpand": "train",
    "tensorboard": "train",
    "wandb": "wandb",
    "transformers": "hf",
    "huggingface_hub": "hf",
    "matplotlib": "plots",
    "fastapi": "serve",
    "uvicorn": "serve",
    "python_multipart": "serve",
    "fastapi_offline": "serve",
    "sklearn": "demo",
    "scipy": "demo",
    "onnx": "speech",
}
"""Top-level import name → the extra (``pip install 'omniembed[EXTRA]'``) that installs it."""


def require(module: str, feature: str) -> ModuleType:
    """Import ``module`` (dotted names allowed, e.g. ``scipy.signal``) for ``feature`` (what the user asked for,
    e.g. "reading point clouds"), or raise :class:`MissingExtraError` naming the extra to install.

    A package that is installed but fails to import (open3d without its system ``libusb``) is reported the same
    way, with the import error's first line.
    """
    try:
        return importlib.import_module(module)
    except (ImportError, OSError) as exc:  # OSError: a shared library the package loads with ctypes is missing
        top = module.partition(".")[0]
        cause = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise MissingExtraError(feature, top, EXTRAS[top], cause) from exc


def optional(module: str) -> ModuleType | None:
    """``module`` when it imports, else None: for fast paths with a fallback (decord before PyAV)."""
    try:
        return importlib.import_module(module)
    except (ImportError, OSError):
        return None


class LazyModule(ModuleType):
    """A module imported (through :func:`require`) on its first attribute access, for modules that use an optional
    package in many functions: ``faiss = LazyModule("faiss", "the retrieval index")`` keeps ``faiss.knn(...)``
    readable while importing the module that holds it needs nothing. Each attribute is looked up once and kept,
    so later reads cost what a plain module's do (an import look-up on every read added ~2 µs to each of the four
    faiss reads of a one-query index search); the modules it wraps are namespaces of functions, classes and
    constants."""

    def __init__(self, module: str, feature: str):
        super().__init__(module)
        self._feature = feature

    def __getattr__(self, name: str):
        value = getattr(require(self.__name__, self._feature), name)
        setattr(self, name, value)
        return value
