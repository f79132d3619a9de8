"""``omniembed create NAME_OR_CONFIG OUT``: a randomly initialised model, saved as a checkpoint directory."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="a registered model name (see `omniembed models`) or a config .json")
    parser.add_argument("out", help="checkpoint directory to write (new or empty)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the model in OUT if it holds one (only the model's own files; "
                             "other files in OUT are kept)")
    parser.add_argument("--seed", type=int, default=0, help="initialisation seed (default 0)")


def run(args: argparse.Namespace) -> int:
    from ..api import create

    model = create(args.config, seed=args.seed)
    model.save(args.out, overwrite=args.overwrite)
    print(f"saved {model.config.name} ({', '.join(model.modalities)}; embed_dim {model.embed_dim}) to {args.out}")
    return 0
