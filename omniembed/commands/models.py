"""``omniembed models``: the pretrained models (name, size, modalities, licence), the named configs for random
initialisation, and the registered modalities."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    parser.add_argument("--open-clip", action="store_true",
                        help="also list every open_clip:ARCH/TAG of open_clip's pretrained table that loads")


def run(args: argparse.Namespace) -> int:
    import json

    from ..errors import ConfigError
    from ..pretrained import cache_root, list_sources
    from ..pretrained.converters import CONVERTERS
    from ..pretrained.named import converted_dir
    from ..models import get_model_config, list_models
    from ..registry import list_modalities

    sources = [{"name": s.name, "url": s.url, "modalities": list(s.modalities), "embed_dim": s.embed_dim,
                "parameters": CONVERTERS[s.converter].parameters(s.arguments), "download_bytes": s.size,
                "sha256": s.sha256, "licence": s.licence, "cached": (converted_dir(s) / "config.json").is_file(),
                "verified": s.verified} for s in list_sources()]
    models, unavailable = {}, {}
    for name in list_models():
        try:
            models[name] = get_model_config(name)
        except ConfigError as exc:  # a model whose parts are an optional package that is not installed
            unavailable[name] = str(exc)
    clips = _open_clip_rows() if args.open_clip else []
    if args.json:
        print(json.dumps({"pretrained": sources, "open_clip": clips,
                          "models": {n: c.to_dict() for n, c in models.items()},
                          "modalities": list_modalities(), "cache": str(cache_root())}))
        return 0
    print(f"pretrained (omniembed.load(NAME), --model NAME; cache {cache_root()}):")
    for s in sources:
        size = (f"{s['download_bytes'] / 1e9:.2f} GB" if s["download_bytes"]
                else f"≈{4 * s['parameters'] / 1e9:.1f} GB")  # float32 weights, where no size is published
        print(f"  {s['name']:<16} {s['parameters'] / 1e9:.2f} B params  {size:<9} embed_dim={s['embed_dim']:<5} "
              f"licence={s['licence']:<16} {'cached ' if s['cached'] else ''}modalities={','.join(s['modalities'])}")
    print("  open_clip:ARCH/TAG   frozen open_clip image+text towers (open_clip's pretrained table; licence per tag"
          + ("" if args.open_clip else "; --open-clip lists them") + ")")
    for row in clips:
        print(f"    {row['name']:<58} embed_dim={row['embed_dim']:<5} modalities=image,text")
    print("  hf:ORG/REPO[@rev]    a saved OmniEmbed model on the Hugging Face Hub")
    print("configs (random init: omniembed.create(NAME)):")
    for name, cfg in models.items():
        print(f"  {name:<16} embed_dim={cfg.embed_dim:<5} anchor={cfg.anchor:<8} modalities={','.join(cfg.modalities)}")
    for name, reason in unavailable.items():
        print(f"  {name:<16} unavailable: {reason}")
    print("modalities: " + ", ".join(list_modalities()))
    return 0


def _open_clip_rows() -> list[dict]:
    from ..pretrained.open_clip import SCHEME, list_open_clip

    return [{"name": f"{SCHEME}{arch}/{tag}", "embed_dim": dim, "modalities": ["image", "text"]}
            for arch, tag, dim in list_open_clip()]
