"""``omniembed convert {imagebind,ulip} CKPT OUT_DIR``: a peer's checkpoint → an OmniEmbed checkpoint directory."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Callable


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("format", choices=sorted(CONVERTERS), help="the checkpoint's format")
    parser.add_argument("checkpoint",
                        help="the checkpoint file (.pth/.pt, read with weights_only=True, or .safetensors)")
    parser.add_argument("out", help="checkpoint directory to write (new or empty)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the model in OUT if it holds one (only the model's own files; "
                             "other files in OUT are kept)")
    parser.add_argument("--config", default=None,
                        help="JSON file of the constructor arguments tensor shapes do not show: ImageBind's (head "
                             "counts of unreleased widths, audio stride, drop-path rates) or ULIP's (num_heads, "
                             "num_group, group_size, npoints, preprocessing, clip_arch, clip_pretrained, "
                             "vision_model)")
    parser.add_argument("--modalities", default=None,
                        help="imagebind: comma-separated modalities to convert (default: all of "
                             "vision,text,audio,depth,thermal,imu)")
    parser.add_argument("--clip-weights", default=None, metavar="FILE",
                        help="ulip: a local open_clip weight file (ViT-bigG-14 for ULIP-2) for the image/text towers "
                             "when the checkpoint holds none")
    parser.add_argument("--no-towers", action="store_true",
                        help="ulip: convert the point encoder only; the image/text towers the checkpoint carries "
                             "are named as skipped in source.json")


def _imagebind(args: argparse.Namespace) -> object:
    from ..convert import load_imagebind
    from ..io import file_sha256
    from ..pretrained.sources import get_source
    from ..provenance import announce

    _refuse(args, "imagebind", ("clip_weights", "no_towers"))
    modalities = [m.strip() for m in args.modalities.split(",") if m.strip()] if args.modalities else None
    model = load_imagebind(args.checkpoint, config=args.config, modalities=modalities)
    # ImageBind's weights are CC BY-NC-SA 4.0 and derivatives of them share it: the record of the named source
    record = get_source("imagebind_huge").provenance(file_sha256(Path(args.checkpoint)))
    # the file's name and digest identify it; its local path would leak into a pushed model card
    model.source = {**record, "name": f"imagebind:{Path(args.checkpoint).name}",
                    "url": f"local file {Path(args.checkpoint).name}", "sha256_published": False,
                    "description": "converted with omniembed convert imagebind"}
    announce(model.source, "converting")
    model.save(args.out, overwrite=args.overwrite)
    return model


def _ulip(args: argparse.Namespace) -> object:
    from ..convert import load_ulip

    _refuse(args, "ulip", ("modalities",))
    config = _read_config(args.config) if args.config else {}
    if args.clip_weights:
        config["clip_weights"] = args.clip_weights
    model = load_ulip(args.checkpoint, config=config, towers=not args.no_towers)
    model.save(args.out, overwrite=args.overwrite)
    record = model.source
    print(f"{record['format']}: towers converted: {', '.join(record['towers_converted']) or 'none'}; skipped: "
          f"{', '.join(record['towers_skipped']) or 'none'}; weights licence: {record['weights_licence']}")
    return model


def _refuse(args: argparse.Namespace, fmt: str, options: tuple[str, ...]) -> None:
    """An option of another format is a mistake worth saying, not one to ignore."""
    from ..errors import ConfigError

    given = [f"--{o.replace('_', '-')}" for o in options if getattr(args, o)]
    if given:
        raise ConfigError(f"{', '.join(given)} does not apply to {fmt} checkpoints")


def _read_config(path: str) -> dict:
    from ..convert.ulip import read_arguments

    return read_arguments(Path(path))


CONVERTERS: dict[str, Callable[[argparse.Namespace], object]] = {"imagebind": _imagebind, "ulip": _ulip}
"""format → convert the checkpoint named by the arguments and write ``args.out``; returns the model."""


def run(args: argparse.Namespace) -> int:
    model = CONVERTERS[args.format](args)
    params = sum(p.numel() for p in model.parameters())
    print(f"converted {args.checkpoint} → {args.out}: {model.config.name}, {', '.join(model.modalities)}; "
          f"embed_dim {model.embed_dim}; {params / 1e6:.1f} M parameters; fingerprint {model.fingerprint()}")
    return 0
