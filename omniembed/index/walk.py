"""Finding the files to index and telling whether they changed: folder walks, stat signatures, content hashes."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

HASH_CHUNK = 1 << 20


@dataclass(frozen=True)
class FoundFile:
    """A file to index: its absolute path and the modality its suffix maps to."""

    path: Path
    modality: str


@dataclass(frozen=True)
class Discovery:
    """What a walk found: files with a modality, and named or walked files whose suffix has none."""

    files: list[FoundFile]
    ignored: list[Path]
    missing: list[Path]


def discover(paths: Iterable[str | os.PathLike], modality_of: Callable[[Path], str | None]) -> Discovery:
    """Files named directly, plus every file under named folders (recursively, hidden entries skipped), each
    with its modality (``modality_of`` — the model's suffix lookup); sorted by path, each file once."""
    seen: dict[Path, FoundFile] = {}
    ignored: list[Path] = []
    missing: list[Path] = []
    for root in (Path(os.path.abspath(Path(p).expanduser())) for p in paths):  # "a/../b" → "b"; links kept
        if root.is_dir():
            candidates = sorted(_walk_dir(root))
        elif root.is_file():
            candidates = [root]
        else:
            missing.append(root)
            continue
        for path in candidates:
            modality = modality_of(path)
            if modality is None:
                ignored.append(path)
            else:
                seen.setdefault(path, FoundFile(path, modality))
    return Discovery(sorted(seen.values(), key=lambda f: str(f.path)), ignored, missing)


def _walk_dir(root: Path) -> Iterable[Path]:
    for directory, subdirs, names in os.walk(root):
        subdirs[:] = [d for d in subdirs if not d.startswith(".")]
        for name in names:
            if not name.startswith("."):
                yield Path(directory) / name


def file_hash(path: str | os.PathLike) -> str:
    """sha256 of the file's bytes, hex (read in 1 MiB chunks). Raises OSError when unreadable."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(HASH_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class Signature:
    """A file's size (bytes) and modification time (ns): equal signatures are taken as unchanged content."""

    size: int
    mtime_ns: int

    @classmethod
    def of(cls, path: str | os.PathLike) -> "Signature":
        st = os.stat(path)
        return cls(st.st_size, st.st_mtime_ns)
