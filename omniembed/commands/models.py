"""``omniembed models``: the named configs and registered modalities."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def run(args: argparse.Namespace) -> int:
    import json

    from ..errors import ConfigError
    from ..registry import get_model_config, list_modalities, list_models

    models, unavailable = {}, {}
    for name in list_models():
        try:
            models[name] = get_model_config(name)
        except ConfigError as exc:  # a model whose parts are an optional package that is not installed
            unavailable[name] = str(exc)
    if args.json:
        print(json.dumps({"models": {n: c.to_dict() for n, c in models.items()}, "modalities": list_modalities()}))
        return 0
    print("models:")
    for name, cfg in models.items():
        print(f"  {name:<16} embed_dim={cfg.embed_dim:<5} anchor={cfg.anchor:<8} modalities={','.join(cfg.modalities)}")
    for name, reason in unavailable.items():
        print(f"  {name:<16} unavailable: {reason}")
    print("modalities: " + ", ".join(list_modalities()))
    return 0
