"""Publishing a saved model to a Hugging Face Hub repository (``model.push_to_hub``, ``omniembed push``), so that
``omniembed.load("hf:ORG/REPO")`` (:mod:`omniembed.pretrained.hub`) reads it anywhere.

Everything goes through ``huggingface_hub`` (the ``[hf]`` extra), so its token and endpoint settings apply as for any
Hub library.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import CheckpointError
from .extras import require
from .model_card import CONFIG_FILE, write_model_card

if TYPE_CHECKING:
    from .model import OmniEmbedModel

def push_directory(directory: str | os.PathLike, repo_id: str, private: bool | None = None,
                   revision: str | None = None, commit_message: str | None = None,
                   token: str | None = None) -> str:
    """Upload a checkpoint directory to ``repo_id`` (created if needed), with its model card: written or refreshed
    first (eval reports added since the save appear; the usage example names ``repo_id``) unless the directory
    holds a README.md a person wrote. Returns the commit's URL."""
    directory = Path(directory)
    if not (directory / CONFIG_FILE).is_file():
        raise CheckpointError(f"{directory}: not an OmniEmbed checkpoint ({CONFIG_FILE} missing); nothing pushed")
    write_model_card(directory, repo_id)
    api = require("huggingface_hub", "pushing models to the Hub").HfApi(token=token)
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
