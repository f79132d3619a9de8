"""``omniembed embed``: files (or texts) → vectors (.npy) + a JSONL line per row."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="*", help="files or folders (walked; modality from the suffix)")
    parser.add_argument("--model", required=True, help="checkpoint directory or registered model name")
    parser.add_argument("--text", action="append", default=[], help="a text to embed (repeatable)")
    parser.add_argument("--out", required=True, help="output .npy; rows are described in OUT with suffix .jsonl")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default=None)
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"])


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from ..io import atomic_path
    from .common import open_model

    model = open_model(args.model, device=args.device)
    files = [p for p in walk(args.inputs) if model.modality_of(p) is not None]
    items: list = [str(p) for p in files] + list(args.text)
    labels = [{"path": str(p), "modality": model.modality_of(p)} for p in files]
    labels += [{"text": t, "modality": "text"} for t in args.text]
    vectors, failures = model.embed(items, batch_size=args.batch_size, on_error="skip", precision=args.precision,
                                    progress=None)
    failed = {f.index for f in failures}
    rows = [row for i, row in enumerate(labels) if i not in failed]
    out = Path(args.out)
    with atomic_path(out) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, vectors)
    with atomic_path(out.with_suffix(".jsonl")) as tmp:
        tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))
    for f in failures:
        print(f"skipped {f.source}: {f.reason}", file=sys.stderr)
    print(f"embedded {len(rows)} inputs → {out} ({vectors.shape[0]}×{vectors.shape[1]}); {len(failures)} skipped")
    return 0 if rows else 1


def walk(paths: list[str]) -> list[Path]:
    """Files named directly, plus every file under named folders, sorted."""
    found: list[Path] = []
    for p in map(Path, paths):
        found.extend(sorted(q for q in p.rglob("*") if q.is_file()) if p.is_dir() else [p])
    return found
