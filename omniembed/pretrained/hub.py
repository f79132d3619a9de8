"""Hugging Face Hub repositories holding an OmniEmbed checkpoint directory: ``hf:ORG/REPO[@rev]`` to load (from
the Hub cache, offline when the files are there); publishing is :mod:`omniembed.publish`.

Everything goes through ``huggingface_hub`` (the ``[hf]`` extra), so its cache (``HF_HUB_CACHE``), token and
offline mode (``HF_HUB_OFFLINE=1``) apply as for any Hub library.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import CheckpointError, ConfigError
from ..extras import require
from .errors import DownloadError, OfflineError

if TYPE_CHECKING:
    from ..model import OmniEmbedModel

SCHEME = "hf:"


def parse(spec: str) -> tuple[str, str | None]:
    """``hf:ORG/REPO[@rev]`` → (repo id, revision or None for the default branch)."""
    body = spec[len(SCHEME):]
    repo, _, revision = body.partition("@")
    if repo.count("/") != 1 or not all(repo.split("/")):
        raise ConfigError(f"'{spec}': expected hf:ORG/REPO or hf:ORG/REPO@revision")
    return repo, revision or None


def _hub() -> Any:
    return require("huggingface_hub", "loading hf: models")


def snapshot(spec: str) -> Path:
    """The local directory of ``spec``'s files (downloaded into the Hub cache when missing or stale)."""
    hub = _hub()
    from huggingface_hub import errors

    repo, revision = parse(spec)
    try:
        return Path(hub.snapshot_download(repo, revision=revision, library_name="omniembed"))
    except errors.LocalEntryNotFoundError as exc:
        raise OfflineError(f"{spec}: not in the Hub cache ({hub.constants.HF_HUB_CACHE}) and the Hub cannot be "
                           f"reached{' (HF_HUB_OFFLINE is set)' if hub.constants.HF_HUB_OFFLINE else ''}; "
                           f"fetch it once online (hf download {repo}"
                           f"{f' --revision {revision}' if revision else ''})") from exc
    except (errors.RepositoryNotFoundError, errors.RevisionNotFoundError) as exc:
        raise DownloadError(f"{spec}: {type(exc).__name__} — check the name, the revision and your access token "
                            f"({str(exc).splitlines()[0]})") from exc


def load_hub(spec: str, device: str | None = None) -> "OmniEmbedModel":
    from ..model import CONFIG_FILE, OmniEmbedModel

    directory = snapshot(spec)
    if not (directory / CONFIG_FILE).is_file():
        raise CheckpointError(f"{spec}: the repository holds no OmniEmbed checkpoint ({CONFIG_FILE} missing at "
                              f"{directory})")
    return OmniEmbedModel.load(directory, device=device)
