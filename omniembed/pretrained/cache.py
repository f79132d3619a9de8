"""Where pretrained weights live: ``$OMNIEMBED_CACHE``, else ``$XDG_CACHE_HOME/omniembed``, else
``~/.cache/omniembed``. Raw downloads go to ``downloads/``, converted OmniEmbed directories to ``models/<name>/``,
open_clip's files to ``open_clip/`` (open_clip's own download code and file names)."""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from typing import Iterator

CACHE_ENV = "OMNIEMBED_CACHE"


def cache_root() -> Path:
    """The cache directory (not created); read from the environment on every call, so it can be moved at runtime."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]).expanduser() / "omniembed"
    return Path.home() / ".cache" / "omniembed"


def downloads_dir() -> Path:
    return cache_root() / "downloads"


def models_dir() -> Path:
    return cache_root() / "models"


def open_clip_dir() -> Path:
    return cache_root() / "open_clip"


@contextlib.contextmanager
def cache_lock(name: str) -> Iterator[None]:
    """Serialise downloading and converting one source across processes (the ranks of a ``torchrun`` job all
    resolve ``--model`` at once: one downloads and converts, the others then find the converted directory)."""
    locks = cache_root() / "locks"
    locks.mkdir(parents=True, exist_ok=True)
    with open(locks / f"{name}.lock", "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
