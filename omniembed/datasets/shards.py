"""Writing webdataset shards: samples (files sharing a key) → ``{prefix}-000000.tar …`` + a ``shards.json`` index.

A sample is ``{"__key__": key, ext: member}``: the member is a file to copy or bytes to store, and lands in the
tar as ``{key}.{ext}``. The index is in wids format (``{"shardlist": [{"url", "nsamples", "filesize"}]}``), which
:func:`omniembed.pretrain.data.expand_shards` reads. Shards and the index are written atomically, with fixed
member metadata (mtime 0, mode 0644), so the same samples always give the same bytes.

Sources of samples: :func:`samples_from_folder` (files grouped by stem) and :func:`samples_from_manifest` (a CSV
or JSONL manifest). ``omniembed data shards`` is the command line over this module.
"""

from __future__ import annotations

import csv
import io
import json
import random
import re
import tarfile
from pathlib import Path
from typing import Iterable

from omniembed.errors import InputError
from omniembed.io import atomic_path

Member = bytes | Path
"""A sample member: a file to copy, or bytes to store."""
Sample = dict[str, Member]
"""extension (without dot, e.g. ``jpg``) → member; plus ``__key__`` optionally."""

INDEX_FILE = "shards.json"


def samples_from_folder(folder: str | Path) -> list[Sample]:
    """Group the files under ``folder`` by relative stem: {"__key__": stem, ext: Path, ...}."""
    folder = Path(folder)
    groups: dict[str, dict] = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")):
        rel = path.relative_to(folder)
        stem = str(rel.parent / rel.name.split(".", 1)[0]) if rel.parent != Path(".") else rel.name.split(".", 1)[0]
        ext = rel.name.split(".", 1)[1].lower() if "." in rel.name else ""
        if not ext:
            continue
        groups.setdefault(stem, {"__key__": stem})[ext] = path
    return list(groups.values())


def samples_from_manifest(path: str | Path, text_columns: Iterable[str] = ("text", "caption")) -> list[Sample]:
    """Rows of a .csv / .jsonl manifest → samples.

    A value naming an existing file (relative to the manifest's folder) is stored with that file's extension; a
    value in one of ``text_columns`` is stored inline as ``.txt`` (``{column}.txt`` for other text columns).
    Raises :class:`~omniembed.errors.InputError` naming the manifest (and the row, for a missing file).
    """
    path = Path(path)
    text_columns = set(text_columns)
    if path.suffix.lower() == ".csv":
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    elif path.suffix.lower() in (".jsonl", ".ndjson"):
        rows = [_json_row(path, n, line) for n, line in enumerate(path.read_text(encoding="utf-8").splitlines())
                if line.strip()]
    else:
        raise InputError(str(path), "manifest must be .csv or .jsonl")
    samples = []
    for i, row in enumerate(rows):
        sample: dict = {"__key__": str(row.pop("key", row.pop("__key__", i)))}
        for column, value in row.items():
            if value is None or value == "":
                continue
            if column in text_columns:
                sample["txt" if column in ("text", "caption") else f"{column}.txt"] = str(value).encode("utf-8")
                continue
            file = Path(value) if Path(value).is_absolute() else path.parent / value
            if not file.is_file():
                raise InputError(str(path), f"row {i + 1}, column '{column}': file {file} not found")
            sample[file.name.split(".", 1)[1].lower() if "." in file.name else column] = file
        samples.append(sample)
    return samples


def _json_row(path: Path, n: int, line: str) -> dict:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        raise InputError(str(path), f"line {n + 1} is not JSON ({exc})") from None
    if not isinstance(row, dict):
        raise InputError(str(path), f"line {n + 1} is not a JSON object")
    return row


def make_shards(samples: list[Sample], out_dir: str | Path, maxcount: int = 1000, prefix: str = "shard",
                shuffle: bool = True, seed: int = 0) -> list[Path]:
    """Write ``samples`` into ``out_dir/{prefix}-000000.tar …`` and ``out_dir/shards.json``; returns the shards.

    Samples are shuffled with ``random.Random(seed)`` first unless ``shuffle`` is False. Keys are made unique and
    dot-free (webdataset splits a member name at the first dot of its base name).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    samples = list(samples)
    if shuffle:
        random.Random(seed).shuffle(samples)
    keys: set[str] = set()
    shards, index = [], []
    for n, start in enumerate(range(0, len(samples), maxcount)):
        shard = out_dir / f"{prefix}-{n:06d}.tar"
        chunk = samples[start:start + maxcount]
        with atomic_path(shard) as tmp:
            with tarfile.open(tmp, "w") as tar:
                for i, sample in enumerate(chunk):
                    _add_sample(tar, _unique_key(sample.get("__key__", f"{start + i:09d}"), keys), sample)
        shards.append(shard)
        index.append({"url": shard.name, "nsamples": len(chunk), "filesize": shard.stat().st_size})
    with atomic_path(out_dir / INDEX_FILE) as tmp:
        tmp.write_text(json.dumps({"__kind__": "wids-shard-index-v1", "wids_version": 1, "name": prefix,
                                   "shardlist": index}, indent=1) + "\n")
    return shards


def _add_sample(tar: tarfile.TarFile, key: str, sample: Sample) -> None:
    for ext, member in sorted((k, v) for k, v in sample.items() if not k.startswith("__")):
        data = member.read_bytes() if isinstance(member, Path) else member
        info = tarfile.TarInfo(f"{key}.{ext}")
        info.size, info.mtime, info.mode = len(data), 0, 0o644
        tar.addfile(info, io.BytesIO(data))


def _unique_key(key: str, seen: set[str]) -> str:
    base = re.sub(r"[^A-Za-z0-9_/-]", "_", str(key)).strip("/") or "sample"
    key, n = base, 1
    while key in seen:
        key, n = f"{base}_{n}", n + 1
    seen.add(key)
    return key
