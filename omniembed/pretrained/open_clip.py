"""``open_clip:ARCH/TAG``: open_clip's own pretrained table and download code, image and text towers frozen,
plus optional new randomly initialised towers (``add=[...]``) to bind to them with the training recipes
(e.g. ``pretrain/recipes/ulip_pointcloud.yaml``).

``TAG`` is a tag of ``open_clip.list_pretrained_tags_by_model(ARCH)`` (downloaded by open_clip into
``<cache>/open_clip``, with open_clip's own sha256 check where its table has one) or a local weight file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import torch

from ..config import ModalityConfig, from_dict
from ..errors import ConfigError
from ..model import OmniEmbedModel
from ..model_config import ModelConfig
from ..registry import get_modality
from .cache import cache_lock, open_clip_dir
from .errors import OfflineError

SCHEME = "open_clip:"

AddSpec = Sequence[str] | Mapping[str, ModalityConfig | Mapping[str, Any] | None]
"""New towers: modality names (default config each) or {modality: config or its dict (None: default)}."""


def parse(spec: str) -> tuple[str, str]:
    """``open_clip:ARCH/TAG`` → (arch, tag); the tag may be a path holding slashes."""
    body = spec[len(SCHEME):]
    arch, sep, tag = body.partition("/")
    if not arch or not sep or not tag:
        raise ConfigError(f"'{spec}': expected open_clip:ARCH/TAG, e.g. open_clip:ViT-B-32/laion2b_s34b_b79k")
    return arch, tag


def open_clip_config(spec: str, add: AddSpec | None = None) -> ModelConfig:
    """The model config of ``spec`` with its weight file fetched: frozen open_clip image + text towers, and the
    ``add`` modalities as new towers."""
    from ..modalities.open_clip_tower import architecture, open_clip_modalities

    arch, tag = parse(spec)
    embed_dim = int(architecture(arch)["embed_dim"])
    if Path(tag).expanduser().is_file():
        modalities = open_clip_modalities(arch, weights=str(Path(tag).expanduser()))
    else:
        modalities = open_clip_modalities(arch, weights=_download(arch, tag), pretrained=tag)
    for name, config in _added(add).items():
        if name in modalities:
            raise ConfigError(f"'{spec}' already has a frozen '{name}' tower; add= takes new modalities only")
        modalities[name] = config
    return ModelConfig(name=f"{SCHEME}{arch}/{Path(tag).name}", embed_dim=embed_dim, anchor="image",
                       modalities=modalities)


def load_open_clip(spec: str, device: str | None = None, add: AddSpec | None = None) -> OmniEmbedModel:
    """An :class:`OmniEmbedModel` holding open_clip ``ARCH`` with ``TAG``'s weights (see the module docstring;
    open_clip draws its own download progress bar)."""
    config = open_clip_config(spec, add)
    model = OmniEmbedModel(config)
    # the pair's temperature is the one CLIP learnt (e.g. 100), kept by the text tower's CLIP module
    trained = model.encoder("text").trunk.tower.clip.logit_scale.detach()
    with torch.no_grad():
        for name in ("image", "text"):
            model.encoder(name).postprocess.logit_scale.log_scale.copy_(trained)
    model.source = {"name": config.name, "url": _origin(*parse(spec)), "licence": None, "notice": None,
                    "description": "frozen open_clip image and text towers"
                    + (f"; new random towers: {', '.join(sorted(_added(add)))}" if add else "")}
    return model.to(device) if device is not None else model


def list_open_clip() -> list[tuple[str, str, int]]:
    """(arch, tag, embed dim) of every entry of open_clip's pretrained table that loads as ``open_clip:ARCH/TAG``
    (square images resized by the short side, a CLIP-BPE text tower); read from the tables, nothing is built."""
    import open_clip

    from ..modalities.open_clip_tower import architecture, open_clip_modalities

    loadable = []
    for arch, tag in open_clip.list_pretrained():
        text_cfg = architecture(arch).get("text_cfg", {})
        if text_cfg.get("hf_tokenizer_name") or text_cfg.get("tokenizer_kwargs"):
            continue
        try:
            open_clip_modalities(arch, pretrained=tag)
        except ConfigError:  # a resize mode or image shape the image modality does not reproduce
            continue
        loadable.append((arch, tag, int(architecture(arch)["embed_dim"])))
    return loadable


def _origin(arch: str, tag: str) -> str:
    """Where the weights came from: the Hub repository or URL in open_clip's table, or a local file's name (its
    path would leak into a pushed model card)."""
    from ..modalities.open_clip_tower import OpenClipConfig, pretrained_preprocessing

    if Path(tag).expanduser().is_file():
        return f"local file {Path(tag).name}"
    entry = pretrained_preprocessing(OpenClipConfig(arch=arch, pretrained=tag))
    return f"https://huggingface.co/{entry['hf_hub']}" if entry.get("hf_hub") else entry.get("url", "")


def _download(arch: str, tag: str) -> str:
    import open_clip
    from open_clip.pretrained import download_pretrained

    from ..modalities.open_clip_tower import OpenClipConfig, pretrained_preprocessing

    entry = pretrained_preprocessing(OpenClipConfig(arch=arch, pretrained=tag))  # ConfigError for unknown tags
    cache = open_clip_dir()
    cache.mkdir(parents=True, exist_ok=True)
    try:
        # open_clip writes a URL download straight to its final name: one process at a time (torchrun ranks)
        with cache_lock(f"open_clip-{arch}-{tag}".replace("/", "_")):
            path = download_pretrained(entry, cache_dir=str(cache))
    except Exception as exc:  # urllib / huggingface_hub errors, open_clip's RuntimeError on a digest mismatch
        where = entry.get("hf_hub") or entry.get("url") or "?"
        raise OfflineError(f"open_clip could not fetch '{tag}' for '{arch}' from {where} ({exc}). Without a "
                           f"network, pass a local file instead: open_clip:{arch}/path/to/weights") from exc
    if not path:
        raise ConfigError(f"open_clip's table gives no download for '{tag}' of '{arch}' "
                          f"(tags: {open_clip.list_pretrained_tags_by_model(arch)})")
    return path


def _added(add: AddSpec | None) -> dict[str, ModalityConfig]:
    if not add:
        return {}
    items = add.items() if isinstance(add, Mapping) else ((name, None) for name in add)
    out: dict[str, ModalityConfig] = {}
    for name, config in items:
        cls = get_modality(name).config_cls
        if config is None:
            out[name] = cls()
        elif isinstance(config, ModalityConfig):
            out[name] = config
        else:
            out[name] = from_dict(cls, dict(config), path=f"add.{name}")
    return out

