"""``omniembed create NAME_OR_CONFIG OUT``: a randomly initialised model, saved as a checkpoint directory."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="a registered model name (see `omniembed models`) or a config .json")
    parser.add_argument("out", help="checkpoint directory to write")
    parser.add_argument("--seed", type=int, default=0, help="initialisation seed (default 0)")


def run(args: argparse.Namespace) -> int:
    from ..api import create

    model = create(args.config, seed=args.seed)
    model.save(args.out)
    print(f"saved {model.config.name} ({', '.join(model.modalities)}; embed_dim {model.embed_dim}) to {args.out}")
    return 0
