"""``omniembed embed``: files (or texts) → vectors (.npy) + a JSONL line per row + a JSON manifest.

Under ``torchrun`` (``RANK`` / ``WORLD_SIZE`` set) rank r embeds every W-th file and text and writes
``OUT.part{r:05d}-of-{W:05d}.npy`` (+ ``.jsonl``, ``.json``) on its own device; ``omniembed index build
--from-embeddings OUT.part*.npy`` merges the parts into an index (see :mod:`omniembed.index.parts`):

    torchrun --nproc_per_node 4 -m omniembed.cli embed --model M --out emb.npy photos/ recordings/
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="*", help="files or folders (walked; modality from the suffix)")
    parser.add_argument("--model", required=True,
                        help="checkpoint directory, pretrained model (omniembed models) or registered config")
    parser.add_argument("--text", action="append", default=[], help="a text to embed (repeatable)")
    parser.add_argument("--out", required=True, help="output .npy; rows are described in OUT with suffix .jsonl")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default=None)
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"])


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from ..errors import EmptyInputError
    from ..index.parts import file_record, manifest, part_path, shard_from_env
    from ..walk import discover, special_kind
    from ..io import atomic_path, write_json
    from ..api import open_model
    from ..inputs import Text
    from .common import require_paths

    require_paths(args.inputs)
    rank, world = shard_from_env()
    model = open_model(args.model, device=args.device or _rank_device(world))
    found = discover(args.inputs, model.modality_of)  # as index build walks: hidden entries skipped
    if rank == 0:
        for path in found.special:
            print(f"skipped {path}: not a regular file but a {special_kind(path)}: not read", file=sys.stderr)
    files = [f.path for f in found.files][rank::world]
    texts = list(args.text)[rank::world]
    items: list = [str(p) for p in files] + [Text(t) for t in texts]  # a --text is words, even "cat.jpg"
    if items:
        vectors, failures = model.embed(items, batch_size=args.batch_size, on_error="skip",
                                        precision=args.precision, progress=None)
    elif world > 1:  # more ranks than inputs: this rank writes an empty part
        vectors, failures = np.zeros((0, model.embed_dim), np.float32), []
    else:
        raise EmptyInputError(", ".join(args.inputs) or "inputs", "nothing to embed (no file with a suffix the model "
                                                                  "reads, no --text)")
    failed = {f.index for f in failures}
    rows = [file_record(p, model.modality_of(p)) for i, p in enumerate(files) if i not in failed]
    rows += [{"text": t, "modality": model.prompt} for i, t in enumerate(texts, start=len(files)) if i not in failed]
    out = part_path(Path(args.out), rank, world)
    with atomic_path(out) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, vectors)
    with atomic_path(out.with_suffix(".jsonl")) as tmp:
        tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))
    write_json(out.with_suffix(".json"), manifest(model.fingerprint(), model.embed_dim, args.model, rank, world,
                                                  len(rows)))
    for f in failures:
        print(f"skipped {f.source}: {f.reason}", file=sys.stderr)
    print(f"embedded {len(rows)} inputs → {out} ({vectors.shape[0]}×{vectors.shape[1]}); {len(failures)} skipped")
    return 0 if rows or world > 1 else 1


def _rank_device(world: int) -> str | None:
    """Under torchrun with GPUs, rank r's process uses GPU ``LOCAL_RANK``; otherwise the default device."""
    import os

    import torch

    if world > 1 and torch.cuda.is_available():
        return f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
    return None

