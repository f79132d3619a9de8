"""The modality registry: modality name → :class:`Modality` subclass.

The core (model assembly, embedding API, checkpoints, CLI) only ever talks to a modality through the
:class:`Modality` interface below and its :class:`~omniembed.encoder.Encoder`; it never branches on a modality's
name. Modalities come from the ``omniembed.modalities`` entry-point group (:data:`PLUGIN_GROUP`), read once on first
use: omniembed's own declare themselves there in its ``pyproject.toml`` exactly as an out-of-tree package does, so
the core imports no modality and a plug-in needs no edit here. :func:`register_modality` also registers a class
defined at run time (a notebook, a test).
"""

from __future__ import annotations

import abc
import os
import tempfile
import warnings
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, ClassVar, Mapping

import numpy as np
import torch

from .config import ModalityConfig, check_choices
from .encoder import Batch, Encoder
from .errors import ConfigError, InputError, MissingInputError, OmniEmbedError, UnreadableInputError

SCRATCH_DIR = "/dev/shm" if Path("/dev/shm").is_dir() else None
"""Where :meth:`Modality.prepare_bytes` writes its scratch files: memory, not disk, where the system has it."""
PLUGIN_GROUP = "omniembed.modalities"
"""The entry-point group naming every installed modality: ``NAME = "package.module:ModalityClass"``."""


class Modality(abc.ABC):
    """Everything about one modality that is not a learned weight: loading, preprocessing, batching.

    An instance is bound to one :class:`ModalityConfig` and is created once per model (it may hold state such
    as a tokenizer). Subclasses set the class attributes and implement :meth:`load`, :meth:`preprocess`,
    :meth:`build_encoder` and :meth:`tiny_config`.
    """

    name: ClassVar[str]
    config_cls: ClassVar[type[ModalityConfig]]
    suffixes: ClassVar[tuple[str, ...]] = ()
    """Lower-case file suffixes (with the dot) that this modality reads."""
    asset_names: ClassVar[tuple[str, ...]] = ()
    """Top-level names (glob patterns) of the files :meth:`export_assets` may write into a model folder."""

    def __init__(self, config: ModalityConfig):
        if not isinstance(config, self.config_cls):
            raise ConfigError(f"modality '{self.name}' needs a {self.config_cls.__name__}, got {type(config).__name__}")
        check_choices(config, self.name)  # every Literal field, for a config built in Python (the loader checks JSON)
        self.config = config

    # ---- raw input → one model sample -------------------------------------------------------------------
    @abc.abstractmethod
    def load(self, path: Path) -> Any:
        """Read one file into this modality's raw signal. Raise :class:`InputError` subclasses naming ``path``."""

    @abc.abstractmethod
    def preprocess(self, raw: Any) -> Any:
        """Turn one raw signal (from :meth:`load` or given by the user) into one model sample (no batch dim)."""

    def accepts(self, item: Any) -> bool:
        """Whether a non-path python object is a raw signal of this modality (e.g. ``str`` for text)."""
        return False

    def sort_key(self, item: Any) -> int:
        """A size estimate used to batch similar-sized inputs together (longest first)."""
        return 0

    def prepare(self, item: Any) -> Any:
        """Load (when ``item`` is a path) and preprocess one input."""
        if isinstance(item, (str, os.PathLike)) and not self.accepts(item):
            path = Path(item)
            if not path.exists():
                raise MissingInputError(str(path), "file not found")
            if path.is_dir():
                raise InputError(str(path), "is a directory, not a file")
            if not path.is_file():  # a FIFO would block the decoder for ever, /dev/zero never ends
                raise UnreadableInputError(str(path), "not a regular file (a FIFO, device or socket): not read")
            return self._prepare_file(path)
        return self.preprocess(item)

    def prepare_bytes(self, data: bytes, suffix: str) -> Any:
        """Load and preprocess one file given as its bytes (a webdataset member) and the suffix it had.

        By default the bytes go to a scratch file (in ``/dev/shm`` where there is one), so they decode exactly as
        :meth:`prepare` decodes that file; a modality whose decoder reads bytes directly overrides this (audio).
        """
        with tempfile.NamedTemporaryFile(suffix=suffix, dir=SCRATCH_DIR) as f:
            f.write(data)
            f.flush()
            return self.prepare(Path(f.name))

    def _prepare_file(self, path: Path) -> Any:
        """Load and preprocess one file; whatever goes wrong is that file's error and names it. A decoder's own
        exception (numpy's EOFError, PIL's SyntaxError, a codec's RuntimeError …) becomes
        :class:`UnreadableInputError`; an input error about the decoded data is re-raised naming the file."""
        try:
            return self.preprocess(self.load(path))
        except InputError as exc:
            if exc.source == str(path):
                raise
            raise type(exc)(str(path), exc.reason) from exc
        except OmniEmbedError:
            raise
        except Exception as exc:  # noqa: BLE001 — the file's bytes are the only thing that varies here
            raise UnreadableInputError(str(path), f"cannot read this {self.name} file "
                                                  f"({type(exc).__name__}: {exc})") from exc

    def collate(self, samples: list[Any]) -> Batch:
        """Stack samples into one batch. Override for variable-length samples."""
        return torch.stack(samples)

    def thumbnail(self, path: Path, size: int = 96) -> "np.ndarray | None":
        """A small RGB picture of one input file (uint8 [size, size, 3]) for result grids; None if none."""
        return None

    def link(self, processors: Mapping[str, "Modality"], encoders: Mapping[str, Encoder]) -> None:
        """Wire this modality to others of the same model (video borrows the image and audio encoders).

        Called once by the model after every processor and encoder exists; most modalities need nothing.
        """

    # ---- learned part --------------------------------------------------------------------------------------
    @abc.abstractmethod
    def build_encoder(self, embed_dim: int) -> Encoder:
        """Build this modality's :class:`~omniembed.encoder.Encoder` (usually a
        :class:`~omniembed.encoder.ModalityEncoder`: stem → trunk → head → postprocess)."""

    @classmethod
    @abc.abstractmethod
    def tiny_config(cls) -> ModalityConfig:
        """A config that is a few MB and fast on CPU (used by the ``omni-tiny`` model)."""

    # ---- checkpoint assets ---------------------------------------------------------------------------------
    def export_assets(self, directory: Path) -> ModalityConfig:
        """Copy files this modality needs besides the weights (tokenizers …) into ``directory``.

        Returns the config to store, with paths rewritten relative to the checkpoint directory.
        """
        return self.config

    @classmethod
    def resolve_assets(cls, config: ModalityConfig, directory: Path) -> ModalityConfig:
        """Make paths stored relative to a checkpoint directory absolute (inverse of :meth:`export_assets`)."""
        return config


_MODALITIES: dict[str, type[Modality]] = {}
_PLUGIN_ERRORS: dict[str, str] = {}
"""Entry-point name → why that plug-in did not load (reported when the modality is asked for)."""
_plugins_read = False


def register_modality(cls: type[Modality]) -> type[Modality]:
    """Class decorator: register a :class:`Modality` subclass under ``cls.name``."""
    if cls.name in _MODALITIES and _MODALITIES[cls.name] is not cls:
        raise ConfigError(f"modality '{cls.name}' is already registered by {_MODALITIES[cls.name].__qualname__}")
    _MODALITIES[cls.name] = cls
    return cls


def get_modality(name: str) -> type[Modality]:
    _read_plugins()
    try:
        return _MODALITIES[name]
    except KeyError:
        if name in _PLUGIN_ERRORS:
            raise ConfigError(f"modality '{name}' is not available: {_PLUGIN_ERRORS[name]}") from None
        if not _MODALITIES:
            raise ConfigError(f"unknown modality '{name}': no modality is registered — the installed omniembed "
                              f"declares none in the '{PLUGIN_GROUP}' entry points; reinstall it "
                              f"(pip install -e . in a source checkout)") from None
        raise ConfigError(f"unknown modality '{name}' (registered: {', '.join(sorted(_MODALITIES))})") from None


def list_modalities() -> list[str]:
    _read_plugins()
    return sorted(_MODALITIES)


def modality_for_suffix(suffix: str, among: list[str] | None = None) -> str | None:
    """The registered modality that reads files with ``suffix``, or None (also when it is not one of ``among``).

    ``suffix`` may be compound (``"".join(path.suffixes)``, e.g. ``.depth.png``): the longest registered tail
    decides, so ``scan.depth.png`` is depth even though ``.png`` alone is image, and a model without a depth
    encoder gets None rather than its image encoder.
    """
    _read_plugins()
    parts = suffix.lower().split(".")[1:]
    for i in range(len(parts)):
        tail = "." + ".".join(parts[i:])
        claimants = [name for name, cls in _MODALITIES.items() if tail in cls.suffixes]
        if claimants:
            return next((name for name in claimants if among is None or name in among), None)
    return None


def path_suffix(path: str | os.PathLike) -> str:
    """The compound suffix :func:`modality_for_suffix` reads: ``scan.depth.png`` → ``.depth.png``."""
    return "".join(Path(path).suffixes).lower()


def _read_plugins() -> None:
    """Register every modality of the :data:`PLUGIN_GROUP` entry points, once per process (in name order, so the
    result does not depend on the order distributions were installed in).

    A plug-in that fails to import, names no :class:`Modality` subclass, or names one registered under another name
    is skipped with a warning, and :func:`get_modality` gives the reason when that modality is asked for: one broken
    third-party package must not take every other modality down with it.
    """
    global _plugins_read
    if _plugins_read:
        return
    _plugins_read = True  # first: a plug-in module may itself call into the registry while it is imported
    for ep in sorted(entry_points(group=PLUGIN_GROUP), key=lambda e: (e.name, e.value)):
        try:
            cls = ep.load()
            if not (isinstance(cls, type) and issubclass(cls, Modality)):
                raise ConfigError(f"{ep.value} is a {type(cls).__name__}, not a Modality subclass")
            if cls.name != ep.name:
                raise ConfigError(f"{ep.value} is the modality '{cls.name}', not '{ep.name}'")
            register_modality(cls)
        except Exception as exc:  # noqa: BLE001 — whatever a third-party import raises, the others still load
            origin = f" (distribution {ep.dist.name} {ep.dist.version})" if ep.dist is not None else ""
            _PLUGIN_ERRORS[ep.name] = (f"the plug-in {ep.name} = {ep.value}{origin} did not load: "
                                       f"{type(exc).__name__}: {exc}")
            warnings.warn(_PLUGIN_ERRORS[ep.name], RuntimeWarning, stacklevel=3)
