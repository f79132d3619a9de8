"""``omniembed`` command line: one subcommand per module in ``omniembed.commands`` (imported on use).

Only the module of the subcommand being run is imported, and a module's ``add_arguments`` imports nothing heavy
(torch and the rest are imported inside ``run``), so ``omniembed --help`` and ``omniembed CMD --help`` answer at
once.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from . import __version__
from .errors import OmniEmbedError

COMMANDS: dict[str, tuple[str, str]] = {
    "models": ("omniembed.commands.models", "list the pretrained models, named configs and registered modalities"),
    "create": ("omniembed.commands.create", "create a randomly initialised model and save it to a directory"),
    "info": ("omniembed.commands.info", "describe a saved model (modalities, sizes, parameters)"),
    "embed": ("omniembed.commands.embed", "embed files or texts with a model and write the vectors"),
    "convert": ("omniembed.commands.convert", "convert a peer's checkpoint (ImageBind, ULIP) into an OmniEmbed checkpoint"),
    "demo": ("omniembed.commands.demo", "OmniDigits end to end: build, train, evaluate, index, search (offline)"),
    "eval": ("omniembed.commands.eval", "zero-shot and cross-modal retrieval scores on a labelled folder"),
    "train": ("omniembed.commands.train", "contrastive pretraining from a YAML recipe (wraps torchrun)"),
    "data": ("omniembed.commands.data", "pack your pairs into training shards, or build OmniDigits"),
    "recipes": ("omniembed.commands.recipes", "list the shipped training recipes, or print one to copy and edit"),
    "index": ("omniembed.commands.index", "build, update, describe or export a searchable index of files"),
    "search": ("omniembed.commands.search", "search an index with a text or a file of any modality"),
    "push": ("omniembed.commands.push", "upload a saved model with its model card to the Hugging Face Hub"),
    "serve": ("omniembed.commands.serve", "a search web page and JSON API over an index (needs the serve extra)"),
}
"""subcommand → (module with ``add_arguments(parser)`` and ``run(args) -> int``, one-line help)."""


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser with every subcommand listed; the options of ``command`` only (of all when None)."""
    parser = argparse.ArgumentParser(prog="omniembed", description="One embedding space for every modality.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(_module=module)
        if command is None or name == command:
            importlib.import_module(module).add_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    # the subcommand is the first word that is not an option (the top level has only --help and --version)
    command = next((word for word in argv if not word.startswith("-")), "")
    args = build_parser(command).parse_args(argv)
    try:
        return int(importlib.import_module(args._module).run(args) or 0)
    except OmniEmbedError as exc:
        print(f"omniembed {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
