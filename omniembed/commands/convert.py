"""``omniembed convert imagebind CKPT OUT_DIR``: a peer's checkpoint → an OmniEmbed checkpoint directory."""

from __future__ import annotations

import argparse

FORMATS = ("imagebind",)
LICENSED_AS = {"imagebind": "imagebind_huge"}
"""format → the pretrained source whose licence a converted file inherits (ImageBind's weights are CC BY-NC-SA 4.0,
and derivatives of them share it)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("format", choices=FORMATS, help="the checkpoint's format")
    parser.add_argument("checkpoint",
                        help="the checkpoint file (.pth/.pt, read with weights_only=True, or .safetensors)")
    parser.add_argument("out", help="checkpoint directory to write")
    parser.add_argument("--config", default=None,
                        help="JSON file of ImageBind's constructor arguments, for what tensor shapes do not show "
                             "(head counts of unreleased widths, audio stride, drop-path rates)")
    parser.add_argument("--modalities", default=None,
                        help="comma-separated ImageBind modalities to convert (default: all of "
                             "vision,text,audio,depth,thermal,imu)")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..convert import load_imagebind
    from ..pretrained.download import file_sha256
    from ..pretrained.sources import get_source
    from ..provenance import announce

    modalities = [m.strip() for m in args.modalities.split(",") if m.strip()] if args.modalities else None
    model = load_imagebind(args.checkpoint, config=args.config, modalities=modalities)
    record = get_source(LICENSED_AS[args.format]).provenance(file_sha256(Path(args.checkpoint)))
    # the file's name and digest identify it; its local path would leak into a pushed model card
    model.source = {**record, "name": f"{args.format}:{Path(args.checkpoint).name}",
                    "url": f"local file {Path(args.checkpoint).name}", "sha256_published": False,
                    "description": f"converted with omniembed convert {args.format}"}
    announce(model.source, "converting")
    model.save(args.out)
    params = sum(p.numel() for p in model.parameters())
    print(f"converted {args.checkpoint} → {args.out}: {model.config.name}, {', '.join(model.modalities)}; "
          f"embed_dim {model.embed_dim}; {params / 1e6:.1f} M parameters; fingerprint {model.fingerprint()}")
    return 0
