"""A named source (``imagebind_huge``): downloaded once, verified, converted once; later loads read only the
converted safetensors in ``<cache>/models/<name>/``."""

from __future__ import annotations

from pathlib import Path

from ..errors import CheckpointError
from ..model import CONFIG_FILE, OmniEmbedModel
from ..provenance import announce
from .cache import cache_lock, downloads_dir, models_dir
from .converters import CONVERTERS
from .download import fetch
from .sources import PretrainedSource


def converted_dir(source: PretrainedSource) -> Path:
    return models_dir() / source.name


def load_source(source: PretrainedSource, device: str | None = None, progress: bool | None = None) -> OmniEmbedModel:
    """The converted model of ``source`` (downloading and converting it first when the cache has none)."""
    target = converted_dir(source)
    with cache_lock(source.name):
        if not (target / CONFIG_FILE).is_file():
            _download_and_convert(source, target, progress)
    return OmniEmbedModel.load(target, device=device)


def _download_and_convert(source: PretrainedSource, target: Path, progress: bool | None) -> None:
    download = downloads_dir() / source.filename
    placed_by_hand = download.is_file()
    digest = fetch(source.url, download, sha256=source.sha256, size=source.size, progress=progress)
    record = source.provenance(digest)
    announce(record, "converting")
    try:
        model = CONVERTERS[source.converter].convert(download, source.arguments)
    except CheckpointError as exc:
        # with no published digest the converter's check of every tensor is what tells a wrong file apart
        if not placed_by_hand:
            download.unlink(missing_ok=True)
        raise CheckpointError(f"{source.url}: the file does not convert ({exc})"
                              + ("" if placed_by_hand else "; the download was deleted")) from exc
    model.source = record
    model.save(target)
    # the converted safetensors hold every weight: keeping the original would double the cache for nothing
    download.unlink(missing_ok=True)
