"""``omniembed info MODEL``: what a saved model holds."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model",
                        help="checkpoint directory, pretrained model (omniembed models) or registered config")
    parser.add_argument("--json", action="store_true", help="print JSON")


def run(args: argparse.Namespace) -> int:
    import json

    from ..api import open_model

    model = open_model(args.model)
    rows = {m: sum(p.numel() for p in model.encoder(m).parameters()) for m in model.modalities}
    if args.json:
        print(json.dumps({"name": model.config.name, "embed_dim": model.embed_dim, "anchor": model.anchor,
                          "parameters": rows, "fingerprint": model.fingerprint(), "source": model.source}))
        return 0
    print(f"{model.config.name}: embed_dim {model.embed_dim}, anchor {model.anchor}, fingerprint {model.fingerprint()}")
    if model.source is not None:
        print(f"  source: {model.source.get('url')}; licence: {model.source.get('licence') or 'not recorded'}")
    for m, n in rows.items():
        suffixes = " ".join(model.processor(m).suffixes)
        print(f"  {m:<11} {n / 1e6:8.2f} M params   reads: {suffixes}")
    return 0
