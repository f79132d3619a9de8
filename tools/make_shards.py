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
atomically. Train on them with ``data.datasets.N.shards=[shards/shards.json]``. The packing itself is
``omniembed.pretrain.shards``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from omniembed.errors import InputError
from omniembed.pretrain.shards import INDEX_FILE, make_shards, samples_from_folder, samples_from_manifest


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
    except (InputError, OSError) as exc:
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
