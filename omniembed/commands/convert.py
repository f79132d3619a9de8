"""``omniembed convert imagebind CKPT OUT_DIR``: a peer's checkpoint → an OmniEmbed checkpoint directory."""

from __future__ import annotations

import argparse

FORMATS = ("imagebind",)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("format", choices=FORMATS, help="the checkpoint's format")
    parser.add_argument("checkpoint",
                        help="the checkpoint file (.pth/.pt, read with weights_only=True, or .safetensors)")
    parser.add_argument("out", help="checkpoint directory to write (new or empty)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the model in OUT if it holds one (only the model's own files; "
                             "other files in OUT are kept)")
    parser.add_argument("--config", default=None,
                        help="JSON file of ImageBind's constructor arguments, for what tensor shapes do not show "
                             "(head counts of unreleased widths, audio stride, drop-path rates)")
    parser.add_argument("--modalities", default=None,
                        help="comma-separated ImageBind modalities to convert (default: all of "
                             "vision,text,audio,depth,thermal,imu)")


def run(args: argparse.Namespace) -> int:
    from ..convert import load_imagebind

    modalities = [m.strip() for m in args.modalities.split(",") if m.strip()] if args.modalities else None
    model = load_imagebind(args.checkpoint, config=args.config, modalities=modalities)
    model.save(args.out, overwrite=args.overwrite)
    params = sum(p.numel() for p in model.parameters())
    print(f"converted {args.checkpoint} → {args.out}: {model.config.name}, {', '.join(model.modalities)}; "
          f"embed_dim {model.embed_dim}; {params / 1e6:.1f} M parameters; fingerprint {model.fingerprint()}")
    return 0
