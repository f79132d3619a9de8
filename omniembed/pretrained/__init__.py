"""Pretrained models in one line: ``omniembed.load(name_or_path)`` accepts, besides a checkpoint directory,

- a named source from :mod:`.sources` (``imagebind_huge``): downloaded once into the cache (:mod:`.cache`),
  verified (:mod:`.download`), converted once; later loads read only the converted safetensors;
- ``open_clip:ARCH/TAG``: open_clip's own pretrained table and download code, image and text towers frozen,
  ``add=[modalities]`` for new random towers to bind (:mod:`.open_clip`);
- ``hf:ORG/REPO[@rev]``: a Hugging Face Hub repository holding an OmniEmbed directory (:mod:`.hub`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from .cache import cache_root
from ..errors import MissingExtraError
from .errors import DownloadError, IntegrityError, OfflineError, UnknownSourceError
from .sources import PretrainedSource, get_source, is_source, list_sources, register_source, unregister_source

if TYPE_CHECKING:
    from ..model import OmniEmbedModel
    from .open_clip import AddSpec


def _load_open_clip(spec: str, device: str | None, add: "AddSpec | None", progress: bool | None) -> "OmniEmbedModel":
    from .open_clip import load_open_clip

    return load_open_clip(spec, device=device, add=add)  # open_clip draws its own progress bar


def _load_hub(spec: str, device: str | None, add: "AddSpec | None", progress: bool | None) -> "OmniEmbedModel":
    from .hub import load_hub

    return load_hub(spec, device=device)


SCHEMES: dict[str, Callable[[str, str | None, "AddSpec | None", bool | None], "OmniEmbedModel"]] = {
    "open_clip:": _load_open_clip,
    "hf:": _load_hub,
}
"""Prefix of a model spec → its loader. Only ``open_clip:`` takes ``add`` (new towers next to frozen ones)."""


def is_pretrained(spec: str) -> bool:
    """True when ``spec`` names a pretrained model (a source name or a scheme prefix), not a path."""
    return is_source(spec) or spec.startswith(tuple(SCHEMES))


def load_pretrained(spec: str, device: str | None = None, add: "AddSpec | None" = None,
                    progress: bool | None = None) -> "OmniEmbedModel":
    """The model ``spec`` names (see the module docstring); ``progress``: download progress bars (None: on a
    terminal only)."""
    from ..errors import ConfigError
    from .named import load_source

    for prefix, loader in SCHEMES.items():
        if spec.startswith(prefix):
            if add and prefix != "open_clip:":
                raise ConfigError(f"'{spec}': add= attaches new towers to open_clip: anchors only")
            return loader(spec, device, add, progress)
    if add:
        raise ConfigError(f"'{spec}': add= attaches new towers to open_clip: anchors only")
    return load_source(get_source(spec), device=device, progress=progress)


__all__ = ["load_pretrained", "is_pretrained", "cache_root", "PretrainedSource", "get_source", "list_sources",
           "register_source", "unregister_source", "DownloadError", "OfflineError", "IntegrityError",
           "MissingExtraError", "UnknownSourceError"]
