"""``omniembed eval``: zero-shot and cross-modal retrieval scores of a model on a labelled folder."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("data", help="a labelled folder: STEM.ext files + STEM.cls labels (e.g. an OmniDigits split "
                                     "such as omnidigits/test, or the dataset folder with --split), or one folder "
                                     "per class as ModelNet40 (DATA/<class>[/<split>]/*.off|.ply|.npy)")
    parser.add_argument("--model", required=True,
                        help="checkpoint directory, pretrained model (omniembed models) or registered config")
    parser.add_argument("--split", default=None, help="sub-folder of DATA to evaluate (e.g. test)")
    parser.add_argument("--classes", default=None,
                        help="comma-separated class names (default: class_names from DATA's manifest.json; for "
                             "class folders, the folder names with _ read as a space)")
    parser.add_argument("--layout", choices=("auto", "stems", "class-folders"), default="auto",
                        help="stems: STEM.cls label files; class-folders: one folder per class (ModelNet40); auto: "
                             "class folders when DATA has sub-folders and no .cls file")
    parser.add_argument("--class-names", default=None, metavar="FILE",
                        help="class names in sorted-folder order: a text file (one per line) or JSON (a list, or "
                             "an object of lists picked with --class-names-key, e.g. ULIP's labels.json)")
    parser.add_argument("--class-names-key", default=None, help="the list to use in a JSON --class-names file")
    parser.add_argument("--templates", default=None, metavar="FILE",
                        help="zero-shot prompt templates with {} for the class name: a text file (one per line) or "
                             "JSON (a list, or an object of lists picked with --templates-key, e.g. ULIP's "
                             "templates.json) (default: the manifest's prompt_templates, else a small built-in set)")
    parser.add_argument("--templates-key", default=None, help="the list to use in a JSON --templates file")
    parser.add_argument("--modality", default=None,
                        help="score only this modality's files (e.g. pointcloud)")
    parser.add_argument("--trained-pairs", default=None,
                        help="pairs trained together, e.g. image-text,image-audio (default: the model's "
                             "training.json); every other pair is flagged emergent")
    parser.add_argument("--out", default=None, help="folder for report.md/json and the plots")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default=None)
    parser.add_argument("--json", action="store_true", help="print the report as JSON instead of Markdown")


def run(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    from ..eval.class_folders import (eval_set_from_class_folders, looks_like_class_folders, read_class_names,
                                      read_templates)
    from ..eval.folder import eval_set_from_folder
    from ..eval.runner import evaluate
    from ..eval.zeroshot import DEFAULT_TEMPLATES
    from ..api import open_model
    from ..model import trained_pairs

    root = Path(args.data)
    model = open_model(args.model, device=args.device)
    by_class_folder = args.layout == "class-folders" or (args.layout == "auto" and looks_like_class_folders(root))
    manifest = read_manifest(root, root / args.split if args.split and not by_class_folder else root)
    classes = (args.classes.split(",") if args.classes
               else read_class_names(args.class_names, args.class_names_key) if args.class_names
               else manifest.get("class_names"))
    templates = (read_templates(args.templates, args.templates_key) if args.templates
                 else manifest.get("prompt_templates") or DEFAULT_TEMPLATES)
    pairs = (parse_pairs(args.trained_pairs) if args.trained_pairs is not None
             else trained_pairs(args.model))
    if by_class_folder:
        data = eval_set_from_class_folders(root, model, args.split, classes, args.modality)
    else:
        if not classes:
            raise ConfigError(f"no class names: pass --classes or give a folder with a manifest.json ({root})")
        data = eval_set_from_folder(root / args.split if args.split else root, model, classes)
        if args.modality:
            data.items = {m: v for m, v in data.items.items() if m == args.modality}
    report = evaluate(model, data, trained_pairs=pairs, templates=templates, out_dir=args.out,
                      batch_size=args.batch_size)
    print(json.dumps(report.as_dict(), indent=2) if args.json else report.markdown())
    if args.out:
        print(f"report and plots written to {args.out}")
    return 0


def read_manifest(*folders: Path) -> dict:
    """The first ``manifest.json`` in ``folders`` (or their parents): ``class_names`` and optional
    ``prompt_templates`` for zero-shot prompts; {} when there is none."""
    for folder in folders:
        for candidate in (folder / "manifest.json", folder.parent / "manifest.json"):
            if candidate.is_file():
                return json.loads(candidate.read_text())
    return {}


def parse_pairs(text: str) -> list[tuple[str, str]]:
    """``"image-text,image-audio"`` → [("image", "text"), ("image", "audio")]."""
    from ..errors import ConfigError

    pairs = []
    for item in filter(None, (p.strip() for p in text.split(","))):
        a, sep, b = item.partition("-")
        if not sep or not a or not b:
            raise ConfigError(f"--trained-pairs: '{item}' is not of the form modality-modality")
        pairs.append((a, b))
    return pairs
