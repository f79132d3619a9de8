"""Finding the files to index and telling whether they changed: folder walks, stat signatures, content hashes.

Only regular files (or links to one) are ever read: a FIFO would block the reader for ever and a device such as
``/dev/zero`` never ends, so such entries are reported, never opened for reading.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
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
    """What a walk found: files with a modality, named or walked files whose suffix has none, named paths that do
    not exist, and entries that are not regular files (FIFOs, devices, sockets, links to one), which are not read."""

    files: list[FoundFile]
    ignored: list[Path]
    missing: list[Path]
    special: list[Path]


def discover(paths: Iterable[str | os.PathLike], modality_of: Callable[[Path], str | None]) -> Discovery:
    """Files named directly, plus every file under named folders (recursively, hidden entries skipped), each
    with its modality (``modality_of`` — the model's suffix lookup); sorted by path, each file once. Entries that
    are not regular files are listed in ``special`` whatever their suffix; ``stat`` never blocks on them."""
    seen: dict[Path, FoundFile] = {}
    ignored: list[Path] = []
    missing: list[Path] = []
    special: list[Path] = []
    for root in (Path(os.path.abspath(Path(p).expanduser())) for p in paths):  # "a/../b" → "b"; links kept
        if root.is_dir():
            candidates = sorted(_walk_dir(root))
        elif root.exists():
            candidates = [root]
        else:
            missing.append(root)
            continue
        for path in candidates:
            if special_kind(path) is not None:
                special.append(path)
                continue
            modality = modality_of(path)
            if modality is None:
                ignored.append(path)
            else:
                seen.setdefault(path, FoundFile(path, modality))
    return Discovery(sorted(seen.values(), key=lambda f: str(f.path)), ignored, missing, special)


def special_kind(path: str | os.PathLike) -> str | None:
    """What ``path`` (links followed) is when it is not a regular file — "FIFO", "character device", "block
    device", "socket" — else None (also when it cannot be stat'ed: reading it then reports why)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None
    return _kind(mode)


def _kind(mode: int) -> str | None:
    kinds = ((stat.S_ISFIFO, "FIFO"), (stat.S_ISCHR, "character device"), (stat.S_ISBLK, "block device"),
             (stat.S_ISSOCK, "socket"), (stat.S_ISDIR, "folder"))
    return next((name for test, name in kinds if test(mode)), None)


def _walk_dir(root: Path) -> Iterable[Path]:
    for directory, subdirs, names in os.walk(root):
        subdirs[:] = [d for d in subdirs if not d.startswith(".")]
        for name in names:
            if not name.startswith("."):
                yield Path(directory) / name


def file_hash(path: str | os.PathLike) -> str:
    """sha256 of the file's bytes, hex (read in 1 MiB chunks). Raises OSError when unreadable or not a regular
    file — checked on the opened file (opened non-blocking, so a FIFO swapped in after the walk cannot hang)."""
    digest = hashlib.sha256()
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    with open(fd, "rb") as f:
        kind = _kind(os.fstat(fd).st_mode)
        if kind is not None:
            raise OSError(errno.EINVAL, f"not a regular file but a {kind}", str(path))
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
