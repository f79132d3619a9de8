"""Export an index's published rows (metadata + vectors) to Parquet, for an external vector database."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..extras import require
from ..io import atomic_path
from .store import MetadataStore

ROW_GROUP = 10_000
FIELDS = ("id", "path", "modality", "size", "mtime_ns", "hash", "label")


def export_parquet(store: MetadataStore, settings: dict[str, Any], out: str | os.PathLike) -> int:
    """Write the rows of the published generation to ``out`` atomically; returns how many.

    Columns: ``id`` (int64, the faiss label), ``path``, ``modality``, ``size`` (bytes), ``mtime_ns``, ``hash``
    (sha256), ``label`` (nullable), ``vector`` (fixed-size list of ``embed_dim`` float32, unit length). The schema
    metadata holds the model fingerprint, model, dimension and generation under the key ``omniembed``.
    """
    pa = require("pyarrow", "Parquet export (omniembed index export)")
    pq = require("pyarrow.parquet", "Parquet export (omniembed index export)")

    dim, gen = int(settings["embed_dim"]), int(settings.get("generation", 0))
    schema = pa.schema([("id", pa.int64()), ("path", pa.string()), ("modality", pa.string()), ("size", pa.int64()),
                        ("mtime_ns", pa.int64()), ("hash", pa.string()), ("label", pa.string()),
                        ("vector", pa.list_(pa.float32(), dim))])
    info = {k: settings.get(k) for k in ("fingerprint", "model", "model_name", "embed_dim", "generation")}
    schema = schema.with_metadata({"omniembed": json.dumps(info)})
    written = 0
    with atomic_path(Path(out)) as tmp, store.snapshot() as conn:
        with pq.ParquetWriter(str(tmp), schema) as writer:
            cur = conn.execute(f"SELECT {', '.join(FIELDS)}, vector FROM items WHERE gen_added <= ? AND "
                               "(gen_removed IS NULL OR gen_removed > ?) ORDER BY id", (gen, gen))
            while batch := cur.fetchmany(ROW_GROUP):
                columns = list(zip(*batch))
                vectors = np.concatenate([store.decode_vector(row_id, blob, dim)
                                          for row_id, blob in zip(columns[0], columns[-1])])
                arrays = [pa.array(c, type=schema.field(i).type) for i, c in enumerate(columns[:-1])]
                arrays.append(pa.FixedSizeListArray.from_arrays(pa.array(vectors), dim))
                writer.write_table(pa.Table.from_arrays(arrays, schema=schema))
                written += len(batch)
    return written
