#!/usr/bin/env python
"""Pack training pairs into webdataset shards plus a shard index (``shards.json``, wids format).

Sources:
  * a folder: files sharing a stem form one sample (``dog.jpg`` + ``dog.txt``; sub-folders allowed);
  * a CSV or JSONL manifest: one row per sample, one column per member. A value naming an existing file
    (relative to the manifest's folder) is stored with that file's extension; a value in a text column
    (``--text-columns``, default ``text,caption``) is stored inline as ``.txt``.

    python tools/make_shards.py data/pairs/ --out shards/ --maxcount 1000
    python tools/make_shards.py pairs.jsonl --out shards/ --text-columns caption

Samples are shuffled (``--seed``) before packing unless ``--no-shuffle``. Shards and the index are written
atomically. Train on them with ``data.datasets.N.shards=[shards/shards.json]``.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import random
import re
import sys
import tarfile
from pathlib import Path
from typing import Iterable

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
    """Rows of a .csv / .jsonl manifest → samples. Raises ValueError naming the row for a missing file."""
    path = Path(path)
    text_columns = set(text_columns)
    if path.suffix.lower() == ".csv":
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    elif path.suffix.lower() in (".jsonl", ".ndjson"):
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    else:
        raise ValueError(f"{path}: manifest must be .csv or .jsonl")
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
                raise ValueError(f"{path}: row {i + 1}, column '{column}': file {file} not found")
            sample[file.name.split(".", 1)[1].lower() if "." in file.name else column] = file
        samples.append(sample)
    return samples


def make_shards(samples: list[Sample], out_dir: str | Path, maxcount: int = 1000, prefix: str = "shard",
                shuffle: bool = True, seed: int = 0) -> list[Path]:
    """Write ``samples`` into ``out_dir/{prefix}-000000.tar …`` and ``out_dir/shards.json``; returns the shards."""
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
        tmp = shard.with_name(f".{shard.name}.tmp")
        with tarfile.open(tmp, "w") as tar:
            for i, sample in enumerate(chunk):
                key = _unique_key(sample.get("__key__", f"{start + i:09d}"), keys)
                for ext, member in sorted((k, v) for k, v in sample.items() if not k.startswith("__")):
                    data = member.read_bytes() if isinstance(member, Path) else member
                    info = tarfile.TarInfo(f"{key}.{ext}")
                    info.size, info.mtime, info.mode = len(data), 0, 0o644
                    tar.addfile(info, io.BytesIO(data))
        tmp.replace(shard)
        shards.append(shard)
        index.append({"url": shard.name, "nsamples": len(chunk), "filesize": shard.stat().st_size})
    tmp = out_dir / f".{INDEX_FILE}.tmp"
    tmp.write_text(json.dumps({"__kind__": "wids-shard-index-v1", "wids_version": 1, "name": prefix,
                               "shardlist": index}, indent=1) + "\n")
    tmp.replace(out_dir / INDEX_FILE)
    return shards


def _unique_key(key: str, seen: set[str]) -> str:
    # webdataset splits a member name at the first dot of its base name: keys carry no dots
    base = re.sub(r"[^A-Za-z0-9_/-]", "_", str(key)).strip("/") or "sample"
    key, n = base, 1
    while key in seen:
        key, n = f"{base}_{n}", n + 1
    seen.add(key)
    return key


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", help="a folder of files, or a .csv / .jsonl manifest")
    parser.add_argument("--out", required=True, help="output folder for the shards and shards.json")
    parser.add_argument("--maxcount", type=int, default=1000, help="samples per shard (default 1000)")
    parser.add_argument("--prefix", default="shard")
    parser.add_argument("--text-columns", default="text,caption", help="manifest columns stored inline as .txt")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-shuffle", action="store_true")
    args = parser.parse_args(argv)
    source = Path(args.source)
    try:
        if source.is_dir():
            samples = samples_from_folder(source)
        else:
            samples = samples_from_manifest(source, args.text_columns.split(","))
    except (ValueError, OSError) as exc:
        print(f"make_shards: error: {exc}", file=sys.stderr)
        return 2
    if not samples:
        print(f"make_shards: error: no samples in {source}", file=sys.stderr)
        return 2
    shards = make_shards(samples, args.out, args.maxcount, args.prefix, not args.no_shuffle, args.seed)
    print(f"wrote {len(samples)} samples in {len(shards)} shards to {args.out} (index {INDEX_FILE})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
