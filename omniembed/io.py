"""Atomic file writes and safetensors checkpoints (never pickle)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

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
