"""Embedding part files: what ``omniembed embed`` writes (one set per torchrun rank), read back for a merge.

A part is three files beside each other: ``NAME.npy`` (float32 rows ``[n, D]``), ``NAME.jsonl`` (one JSON object
per row: ``{"path", "modality", "size", "mtime_ns", "hash"}`` for a file, ``{"text", "modality"}`` for a text) and
``NAME.json`` (the manifest: the model's fingerprint, its dimension, the rank and world size, the row count).
Under ``torchrun`` rank r of W embeds every W-th file (``files[r::W]``) and writes
``NAME.part{r:05d}-of-{W:05d}.npy`` etc.; ``omniembed index build --from-embeddings NAME.part*.npy`` merges them.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from ..errors import ConfigError
from ..walk import Signature, file_hash
from .errors import IndexCorruptError, ModelMismatchError

MANIFEST_FORMAT = "omniembed-embeddings/1"


def shard_from_env() -> tuple[int, int]:
    """(rank, world size) from torchrun's ``RANK`` / ``WORLD_SIZE`` (0, 1 when unset)."""
    try:
        rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        raise ConfigError(f"RANK={os.environ.get('RANK')!r} / WORLD_SIZE={os.environ.get('WORLD_SIZE')!r} are not "
                          "integers") from None
    if world < 1 or not 0 <= rank < world:
        raise ConfigError(f"RANK {rank} is not in [0, WORLD_SIZE {world})")
    return rank, world


def part_path(out: Path, rank: int, world: int) -> Path:
    """``out`` itself for one process, else ``NAME.part{rank}-of-{world}.npy``."""
    return out if world == 1 else out.with_name(f"{out.stem}.part{rank:05d}-of-{world:05d}{out.suffix}")


def file_record(path: Path, modality: str) -> dict[str, object]:
    """The JSONL row of an embedded file: its absolute path, modality, size, mtime (ns) and sha256."""
    signature = Signature.of(path)
    return {"path": os.path.abspath(path), "modality": modality, "size": signature.size,
            "mtime_ns": signature.mtime_ns, "hash": file_hash(path)}


def manifest(fingerprint: str, dim: int, model: str, rank: int, world: int, rows: int) -> dict[str, object]:
    return {"format": MANIFEST_FORMAT, "fingerprint": fingerprint, "embed_dim": dim, "model": model, "rank": rank,
            "world_size": world, "rows": rows}


@dataclass(frozen=True)
class PartRow:
    path: str
    modality: str
    size: int
    mtime_ns: int
    hash: str


@dataclass(frozen=True)
class Part:
    """One part's file rows with their vectors ``[n, D]``, and the texts it also holds (not indexed)."""

    source: str
    rows: list[PartRow]
    vectors: np.ndarray
    texts: list[str]


def read_parts(paths: Sequence[str | os.PathLike], fingerprint: str, dim: int) -> Iterator[Part]:
    """Read each part (``.npy`` path; its ``.jsonl`` and ``.json`` beside it), checking it was embedded by the model
    with ``fingerprint`` and holds one ``[dim]`` row per JSONL line."""
    for path in map(Path, paths):
        meta_path, rows_path = path.with_suffix(".json"), path.with_suffix(".jsonl")
        try:
            meta = json.loads(meta_path.read_text())
            records = [json.loads(line) for line in rows_path.read_text().splitlines() if line.strip()]
            vectors = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise IndexCorruptError(str(path), f"cannot read the part (.npy, .jsonl and .json): {exc}") from exc
        if meta.get("format") != MANIFEST_FORMAT:
            raise IndexCorruptError(str(meta_path), f"not an embeddings manifest ({MANIFEST_FORMAT})")
        if meta["fingerprint"] != fingerprint:
            raise ModelMismatchError(str(path), f"embedded by model {meta['fingerprint']} ({meta.get('model')}), the "
                                                f"index's model is {fingerprint}")
        if vectors.ndim != 2 or vectors.shape != (len(records), dim):
            raise IndexCorruptError(str(path), f"holds {vectors.shape} vectors for {len(records)} rows of dim {dim}")
        keep = [i for i, r in enumerate(records) if "path" in r]
        rows = [PartRow(records[i]["path"], records[i]["modality"], int(records[i]["size"]),
                        int(records[i]["mtime_ns"]), records[i]["hash"]) for i in keep]
        yield Part(str(path), rows, vectors[keep].astype(np.float32),
                   [r["text"] for r in records if "text" in r])
