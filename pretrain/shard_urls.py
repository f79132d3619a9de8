"""A dataset's ``shards`` list → the shard URLs the loader reads, checked before any is opened.

An entry is a brace pattern (``data/{000000..000099}.tar``), a folder of shards (its ``shards.json``, else its
``*.tar`` files in name order) or a ``.json`` shard index in wids format (``tools/make_shards.py`` writes one).

webdataset opens a URL by its scheme, and ``pipe:CMD`` runs ``CMD`` in a shell. A shard index is data — it may come
with a downloaded dataset — so its URLs never run a command: only :data:`INDEX_SCHEMES` are accepted there. A
recipe is code its author runs, so it may use ``pipe:`` too, but only with ``data.allow_pipe_urls: true``.
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlparse

import braceexpand

from omniembed.errors import ConfigError

INDEX_FILE = "shards.json"
INDEX_SCHEMES = ("file", "http", "https", "gs")
"""URL schemes a shard may have besides a plain local path: read as files, or fetched by ``curl`` / ``gsutil`` with
the URL as one argument (no shell)."""
PIPE_SCHEME = "pipe"
ACCEPTED = "local paths, file://, http://, https://, gs:// (and pipe: in a recipe with data.allow_pipe_urls: true)"


class ShardListError(ConfigError):
    """A shard list names no readable shards, or a URL this loader refuses."""


def scheme_of(url: str) -> str:
    """The URL's scheme, lower case; "" for a local path (a Windows drive letter is not a scheme)."""
    scheme = urlparse(url).scheme.lower()
    return "" if len(scheme) == 1 else scheme


def check_url(url: str, where: str, allow_pipe: bool, index: bool = False) -> str:
    """``url`` if its scheme is accepted in ``where`` (a recipe's shard list, or a shard index file when
    ``index``), else :class:`ShardListError` naming ``where``, the URL and the accepted schemes."""
    scheme = scheme_of(url)
    if scheme in ("",) + INDEX_SCHEMES or (scheme == PIPE_SCHEME and allow_pipe and not index):
        return url
    if scheme == PIPE_SCHEME:
        why = ("a shard index never runs commands" if index else
               "pipe: URLs run shell commands; set data.allow_pipe_urls: true in the recipe to allow them")
        raise ShardListError(f"{where}: refused shard URL '{url}': {why} (accepted: {ACCEPTED})")
    raise ShardListError(f"{where}: unsupported URL scheme '{scheme}:' in shard URL '{url}' (accepted: {ACCEPTED})")


def expand_shards(patterns: list[str], allow_pipe: bool = False, where: str = "shards") -> list[str]:
    """Brace patterns, shard folders and ``.json`` shard indexes → shard URLs, in order. ``allow_pipe``: the
    recipe's ``data.allow_pipe_urls``; ``where``: the list's name in messages (``data.datasets.0.shards``).

    Raises :class:`ShardListError` naming the entry for a refused URL, an unreadable index, or local shards that
    are not there ("no shards found at …").
    """
    urls: list[str] = []
    for pattern in patterns:
        path = Path(pattern)
        if scheme_of(pattern) == "" and path.is_dir():
            urls += _folder(path)
        elif pattern.endswith(".json") and scheme_of(pattern) == "":
            urls += _index(path)
        else:
            found = [check_url(u, where, allow_pipe) for u in braceexpand.braceexpand(pattern)]
            missing = [u for u in found if scheme_of(u) == "" and not Path(u).is_file()]
            if len(missing) == len(found):
                raise ShardListError(f"no shards found at {pattern}")
            if missing:
                raise ShardListError(f"{len(missing)} of the {len(found)} shards of {pattern} are missing "
                                     f"(first: {missing[0]})")
            urls += found
    if not urls:
        raise ShardListError(f"no shards found at {', '.join(patterns) or '(an empty shard list)'}")
    return urls


def _folder(folder: Path) -> list[str]:
    """A folder's ``shards.json`` if it has one, else its ``*.tar`` files in name order."""
    if (folder / INDEX_FILE).is_file():
        return _index(folder / INDEX_FILE)
    tars = sorted(str(p) for p in folder.glob("*.tar") if p.is_file())
    if not tars:
        raise ShardListError(f"no shards found at {folder} (no {INDEX_FILE} and no .tar files)")
    return tars


def _index(index: Path) -> list[str]:
    """The URLs of a wids shard index; relative ones are relative to its folder. Never a ``pipe:`` URL."""
    if not index.is_file():
        raise ShardListError(f"no shards found at {index} (no such shard index)")
    try:
        data = json.loads(index.read_text(encoding="utf-8"))
        entries = data["shardlist"]
        urls = [entry["url"] for entry in entries]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, TypeError, KeyError) as exc:
        raise ShardListError(f"{index}: not a shard index (expected JSON {{\"shardlist\": [{{\"url\": ...}}, ...]}}; "
                             f"{type(exc).__name__}: {exc})") from None
    if not all(isinstance(u, str) and u for u in urls):
        raise ShardListError(f"{index}: every shardlist entry needs a non-empty string \"url\"")
    if not urls:
        raise ShardListError(f"no shards found at {index} (its shardlist is empty)")
    return [check_url(u, str(index), allow_pipe=False, index=True) if scheme_of(u) else str(index.parent / u)
            for u in urls]
