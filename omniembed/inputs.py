"""What one item given to ``embed()`` is: a text, a file, or a folder that stands for the files under it.

Strings are judged by their form (plus, for a few, whether the path exists), so a call means the same in every
working directory:

* ``Text("…")`` is text, whatever it says (``Text("my cat.jpg")``); with ``modality=`` the model's prompt modality
  (``ModelConfig.prompt``, "text" unless the config says otherwise) every string is.
* An ``os.PathLike`` (``pathlib.Path``) is a path: a folder, or a file.
* A string ending in ``/`` names a folder; so does one containing ``/`` (or starting ``~`` / ``.``) that is an
  existing folder.
* A string ending in a suffix some modality reads (``.jpg``, ``.depth.png``) names a file — a missing one is a
  :class:`~omniembed.errors.MissingInputError` (say ``Text("my cat.jpg")`` for the words); a string with another
  suffix names a file when that file exists.
* Any other string is text — also a bare word such as ``"photos"`` that happens to name a folder here (with a
  warning; write ``"photos/"`` or ``Path("photos")`` for the folder).

A folder is replaced, where it stands in the input list, by the files under it that the model reads: recursively,
hidden entries skipped, regular files only, sorted by path — the walk of ``omniembed embed`` and
``omniembed index build`` (:func:`omniembed.walk.discover`). So one folder gives one row per such file;
:func:`expand_folders` lists them. A folder holding none is an :class:`~omniembed.errors.EmptyInputError`.
"""

from __future__ import annotations

import enum
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from .registry import modality_for_suffix, path_suffix
from .walk import discover

MAX_PATH_CHARS = 4096


@dataclass(frozen=True)
class Text:
    """A string to embed as text, whatever it looks like: ``model.embed([Text("my cat.jpg"), "cat.jpg"])``."""

    text: str

    def __post_init__(self) -> None:
        if not isinstance(self.text, str):
            raise TypeError(f"Text wraps a str, got {type(self.text).__name__}")


class Kind(enum.Enum):
    TEXT = "text"
    FILE = "file"
    FOLDER = "folder"
    OTHER = "other"
    """Not a string or path: an array, tensor, PIL image … (its modality says what it is)."""


def kind_of(item: Any, modality: str | None = None, prompt: str = "text") -> Kind:
    """What ``item`` is under the rules above (``modality=prompt``, the model's prompt modality, makes every
    string text)."""
    if isinstance(item, Text):
        return Kind.TEXT
    if isinstance(item, os.PathLike):
        return Kind.FOLDER if os.path.isdir(os.path.expanduser(item)) else Kind.FILE
    if not isinstance(item, str):
        return Kind.OTHER
    if modality == prompt or "\n" in item or len(item) > MAX_PATH_CHARS:
        return Kind.TEXT
    if item.endswith(("/", os.sep)) or (_has_path_form(item) and os.path.isdir(os.path.expanduser(item))):
        return Kind.FOLDER
    if modality is not None or _has_file_suffix(item):
        return Kind.FILE
    return Kind.TEXT


def warn_if_folder_name(text: str) -> None:
    """Warn when a string read as text also names a folder here — the user may have meant the folder."""
    if text.strip() and os.path.isdir(text):
        warnings.warn(f"{text!r} is embedded as text, but it also names a folder here: write {text + '/'!r} or "
                      f"Path({text!r}) to embed the folder's files, Text({text!r}) to keep it text without this "
                      "warning", UserWarning, stacklevel=4)


def _has_path_form(text: str) -> bool:
    return os.sep in text or "/" in text or text.startswith(("~", "."))


def _has_file_suffix(text: str) -> bool:
    """A string is a file path when it ends in a suffix some modality reads, or in another suffix and exists."""
    suffix = Path(text).suffix.lower()
    return bool(suffix) and " " not in suffix and (modality_for_suffix(path_suffix(text)) is not None
                                                   or os.path.exists(text))


def expand_folders(items: list[Any], modality_of: Callable[[Path], str | None],
                   modality: str | None = None, prompt: str = "text") -> list[Any]:
    """``items`` with each folder replaced, in place, by the files under it that ``modality_of`` (the model's
    suffix lookup) maps to a modality — to ``modality`` when one is given. A folder holding no such file (or
    missing) stays as it is, for :func:`embed` to report."""
    out: list[Any] = []
    for item in items:
        if kind_of(item, modality, prompt) is not Kind.FOLDER or not os.path.isdir(os.path.expanduser(item)):
            out.append(item)
            continue
        found = discover([item], modality_of).files
        files = [f.path for f in found if modality is None or f.modality == modality]
        out.extend(files or [item])
    return out
