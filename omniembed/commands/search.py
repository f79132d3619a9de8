"""``omniembed search IDX (--text "…" | --query FILE)``: the indexed files closest to a text or a file."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("index", help="index directory (see `omniembed index build`)")
    query = parser.add_mutually_exclusive_group(required=True)
    query.add_argument("--text", help="a text query")
    query.add_argument("--query", metavar="FILE", help="a file of any modality the model reads")
    parser.add_argument("--k", type=int, default=10, help="how many results (default 10)")
    parser.add_argument("--modality", default=None, help="only these modalities, comma-separated (e.g. image,audio)")
    parser.add_argument("--json", action="store_true", help="one JSON object per result instead of a table")
    parser.add_argument("--grid", metavar="PNG", default=None, help="also draw the query and results as a picture")
    parser.add_argument("--model", default=None, help="the index's model, if not where it was built from")
    parser.add_argument("--device", default=None, help="where the model runs (default: cpu)")


def run(args: argparse.Namespace) -> int:
    from ..errors import MissingInputError
    from ..index import Index

    index = Index.open(args.index, model=args.model, device=args.device)
    modalities = args.modality.split(",") if args.modality else None
    if args.query is not None:
        query = Path(args.query)
        if not query.is_file():
            raise MissingInputError(args.query, "query file not found")
    else:
        query = args.text
    hits = index.search(query, k=args.k, modalities=modalities)
    if args.json:
        for hit in hits:
            print(json.dumps(hit.to_dict()))
    else:
        print(f"{'rank':>4}  {'score':>7}  {'modality':<10}  path")
        for hit in hits:
            print(f"{hit.rank:>4}  {hit.score:7.4f}  {hit.modality:<10}  {hit.path}")
    if args.grid:
        from ..eval.plots import plot_retrievals

        query_modality = index.model.prompt if args.text is not None else index.model.modality_of(query)
        plot_retrievals(index.model, [(str(query), query_modality, [(h.path, h.modality, h.score) for h in hits])],
                        Path(args.grid))
    return 0
