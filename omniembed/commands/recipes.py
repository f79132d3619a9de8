"""``omniembed recipes [show NAME]``: the training recipes shipped with the package, to train as they are (by name)
or to copy and edit (``omniembed recipes show NAME > mine.yaml``)."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION")
    show = sub.add_parser("show", help="print a recipe (YAML, comments included)",
                          description="Print a shipped recipe, to copy and edit: omniembed recipes show NAME > my.yaml")
    show.add_argument("name", help="a recipe name from `omniembed recipes`")


def run(args: argparse.Namespace) -> int:
    from ..pretrain.config import list_recipes, recipe_path, recipe_summary

    if args.action == "show":
        print(recipe_path(args.name).read_text(encoding="utf-8"), end="")
        return 0
    names = list_recipes()
    width = max(map(len, names), default=0)
    for name in names:
        print(f"{name:<{width}}  {recipe_summary(name)}")
    print("\ntrain one: omniembed train NAME [key=value ...]; copy one: omniembed recipes show NAME > my.yaml")
    return 0
