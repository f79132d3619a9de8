"""Hugging Face Hub repositories holding an OmniEmbed checkpoint directory: ``hf:ORG/REPO[@rev]`` to load (from
the Hub cache, offline when the files are there), :func:`push_directory` / ``model.push_to_hub`` to publish.

Everything goes through ``huggingface_hub`` (the ``[hf]`` extra), so its cache (``HF_HUB_CACHE``), token and
offline mode (``HF_HUB_OFFLINE=1``) apply as for any Hub library.
"""

from __future__ import annotations

import os
import tempfile
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
    return require("huggingface_hub", "loading or pushing hf: models")


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


def push_directory(directory: str | os.PathLike, repo_id: str, private: bool | None = None,
                   revision: str | None = None, commit_message: str | None = None,
                   token: str | None = None) -> str:
    """Upload a checkpoint directory to ``repo_id`` (created if needed), with its model card: written or refreshed
    first (eval reports added since the save appear; the usage example names ``repo_id``) unless the directory
    holds a README.md a person wrote. Returns the commit's URL."""
    from ..model import CONFIG_FILE
    from ..model_card import write_model_card

    directory = Path(directory)
    if not (directory / CONFIG_FILE).is_file():
        raise CheckpointError(f"{directory}: not an OmniEmbed checkpoint ({CONFIG_FILE} missing); nothing pushed")
    write_model_card(directory, repo_id)
    api = _hub().HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True)
    if revision is not None:
        api.create_branch(repo_id, branch=revision, exist_ok=True)
    info = api.upload_folder(repo_id=repo_id, folder_path=str(directory), revision=revision,
                             commit_message=commit_message or f"Upload OmniEmbed model from {directory.name}")
    return str(getattr(info, "commit_url", info))


def push_model(model: "OmniEmbedModel", repo_id: str, private: bool | None = None, revision: str | None = None,
               commit_message: str | None = None, token: str | None = None) -> str:
    """``model.save`` into a temporary directory, then :func:`push_directory`."""
    with tempfile.TemporaryDirectory(prefix="omniembed-push-") as tmp:
        directory = model.save(Path(tmp) / "model")
        return push_directory(directory, repo_id, private=private, revision=revision,
                              commit_message=commit_message, token=token)
