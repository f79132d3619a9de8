"""Atomic file writes and safetensors checkpoints (never pickle)."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import hashlib
import json
import os
import secrets
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Callable, Iterator

import torch
from safetensors.torch import load_file, save_file

from .errors import CheckpointError, OutputError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it over ``path`` only if the block succeeds.

    Readers therefore see the old file or the complete new one, never a partial write.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise _output_error(path, exc) from None
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        try:
            with open(tmp_path, "rb+") as f:
                os.fsync(f.fileno())
            os.replace(tmp_path, path)
        except OSError as exc:  # a full disk, or a folder of that name in the way
            raise _output_error(path, exc) from None
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary directory beside ``path``; swap it in for ``path`` when the block succeeds."""
    path = Path(path)
    if path.name in ("", ".", ".."):  # "." would have to be swapped for itself
        raise OutputError(str(path), "name the folder to write (e.g. ./my-model), not '.', '..' or '/'")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    except OSError as exc:
        raise _output_error(path, exc) from None
    try:
        yield tmp
        old = None
        if path.exists():
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            os.replace(path, old)
        os.replace(tmp, path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _output_error(path: Path, exc: OSError) -> OutputError:
    """Why ``path`` cannot be written, naming a file that stands where a folder is needed ("File exists" or
    "Not a directory" from the OS would not say which)."""
    blocking = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
    return OutputError(str(path), f"{blocking} is a file, not a folder" if blocking else exc.strerror or str(exc))


@contextlib.contextmanager
def replace_owned_entries(path: str | os.PathLike, owns: Callable[[str], bool]) -> Iterator[Path]:
    """Yield an empty staging folder; when the block succeeds, ``path`` becomes the staged entries plus every
    top-level entry ``path`` already held that ``owns`` (a name → bool) does not claim, in one atomic swap.

    So a writer replaces only its own files: the entries it claims are dropped (also ones it no longer writes),
    everything else in the folder survives. The kept entries are hard-linked into the staging folder (copied
    where a link is impossible), so until the swap ``path`` is untouched and after it every kept file is the
    same file (same inode) as before; a failure or kill at any point leaves the old folder complete. The swap
    is one ``renameat2(RENAME_EXCHANGE)`` on Linux; elsewhere two renames, between which ``path`` is briefly
    absent. Kept sub-folders are recreated, so a process whose working directory is inside one keeps the old.
    """
    path = Path(os.path.realpath(path))  # a link to a model folder: write in the folder it points to
    stage = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        os.mkdir(stage)  # not mkdtemp: the folder gets the umask's mode, as a plain mkdir would
    except OSError as exc:
        raise _output_error(path, exc) from None
    try:
        yield stage
        foreign = sorted(p.name for p in stage.iterdir() if not owns(p.name))
        if foreign:
            raise RuntimeError(f"{path}: the writer staged {foreign}, which it does not claim as its own")
        if path.is_dir():
            for entry in sorted(path.iterdir()):
                if not owns(entry.name):
                    _link_entry(entry, stage / entry.name)
            shutil.copymode(path, stage)
            if not _exchange(stage, path):
                old = path.with_name(f".{path.name}.{secrets.token_hex(4)}.old")
                os.replace(path, old)
                os.replace(stage, path)
                stage = old
        else:
            os.replace(stage, path)
    finally:
        if stage.exists():  # the old folder's own entries, or links to kept ones: the data lives on in ``path``
            shutil.rmtree(stage, ignore_errors=True)


def _link_entry(source: Path, target: Path) -> None:
    """Recreate ``source`` at ``target`` without copying data: symlinks as symlinks, folders recursively,
    files as hard links (copied only across a mount point or where links are refused)."""
    if source.is_symlink():
        os.symlink(os.readlink(source), target)
    elif source.is_dir():
        shutil.copytree(source, target, symlinks=True, copy_function=_link_or_copy)
    else:
        _link_or_copy(source, target)


def _link_or_copy(source: str | os.PathLike, target: str | os.PathLike) -> None:
    try:
        os.link(source, target, follow_symlinks=False)
    except OSError:
        shutil.copy2(source, target, follow_symlinks=False)


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux ``renameat2``); False where the system or file system cannot."""
    renameat2 = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None) if sys.platform == "linux" else None
    if renameat2 is None:
        return False
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    raise OSError(code, os.strerror(code), str(b))


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 of the file's bytes, hex, read in 1 MiB blocks (a multi-GB checkpoint is never held in memory)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_json(path: str | os.PathLike, obj: object) -> None:
    """Write ``obj`` as indented JSON atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n")


def save_tensors(path: str | os.PathLike, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    """Save a flat tensor dict as safetensors, atomically. Shared storage is cloned (safetensors forbids aliasing)."""
    flat = {k: v.detach().contiguous().clone() if _shares_storage(v, tensors) else v.detach().contiguous()
            for k, v in tensors.items()}
    with atomic_path(path) as tmp:
        save_file(flat, str(tmp), metadata=metadata)


def _shares_storage(t: torch.Tensor, tensors: dict[str, torch.Tensor]) -> bool:
    ptr = t.untyped_storage().data_ptr()
    return sum(1 for v in tensors.values() if v.untyped_storage().data_ptr() == ptr) > 1


def load_tensors(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Load a safetensors file to CPU; a missing or corrupt file raises :class:`CheckpointError`."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: weights file not found")
    try:
        return load_file(str(path), device="cpu")
    except Exception as exc:  # safetensors raises its own SafetensorError / OSError
        raise CheckpointError(f"{path}: cannot read safetensors weights ({exc})") from exc
