"""``omniembed data DATASET ...``: build a dataset; one sub-command per entry of :data:`DATASETS`.

``omniembed data shards SRC OUT`` packs your own pairs for training; ``omniembed data omnidigits OUT`` builds the
demo's dataset.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class DatasetCommand:
    """A dataset builder on the command line: its help line, its options, and the call that builds it."""

    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="dataset", metavar="DATASET", required=True)
    for name, command in DATASETS.items():
        p = sub.add_parser(name, help=command.help, description=command.help)
        command.add_arguments(p)
        p.set_defaults(_build=command.run)


def run(args: argparse.Namespace) -> int:
    return args._build(args)


# ---- omnidigits ---------------------------------------------------------------------------------------------------
def _omnidigits_arguments(parser: argparse.ArgumentParser) -> None:
    from ..datasets.omnidigits import MODALITIES, SOURCES

    parser.add_argument("out", help="output folder (replaced as a whole when the build completes)")
    parser.add_argument("--train", type=int, default=2000, help="training samples (default 2000)")
    parser.add_argument("--test", type=int, default=500, help="test samples (default 500)")
    parser.add_argument("--source", choices=SOURCES, default="auto",
                        help="shared: MNIST + FSDD from --shared-root; offline: scikit-learn digits + espeak-ng; "
                             "auto (default): shared when present; all: every source at hand (MNIST + FSDD when "
                             "present, scikit-learn digits, font renders, four espeak-ng sources, five point-cloud "
                             "lifting recipes), each sample's inputs from sources picked at random")
    parser.add_argument("--exclude", default="", metavar="SOURCES",
                        help="comma-separated sources left out of the train split (the test split keeps them): "
                             "a leave-one-source-out build, e.g. --exclude fonts")
    parser.add_argument("--seed", type=int, default=0, help="the build is a function of the seed (default 0)")
    parser.add_argument("--workers", type=int, default=None, help="rendering processes (default: CPU count, ≤ 8)")
    parser.add_argument("--modalities", default=",".join(MODALITIES),
                        help=f"comma-separated subset of {','.join(MODALITIES)} (default: all)")
    parser.add_argument("--shared-root", default=None,
                        help="folder holding mnist/ and fsdd/, e.g. ../shared/data (default: $OMNIEMBED_SHARED_DATA; "
                             "without either, auto builds from the offline sources)")


def _omnidigits_run(args: argparse.Namespace) -> int:
    from ..datasets.omnidigits import build_omnidigits

    start = time.perf_counter()
    manifest = build_omnidigits(
        args.out, n_train=args.train, n_test=args.test, source=args.source, seed=args.seed, workers=args.workers,
        modalities=[m.strip() for m in args.modalities.split(",") if m.strip()], shared_root=args.shared_root,
        log=lambda line: print(line, file=sys.stderr, flush=True),
        exclude=[s.strip() for s in args.exclude.split(",") if s.strip()])
    seconds = time.perf_counter() - start
    for split, counts in manifest.counts.items():
        print(f"{split}: " + ", ".join(f"{n} {m}" for m, n in counts.items()))
    print(f"built OmniDigits ({manifest.source} sources: {'; '.join(manifest.sources.values())}) in {args.out} "
          f"in {seconds:.1f} s; {len(manifest.skipped)} source files skipped (listed in manifest.json)")
    return 0


# ---- shards --------------------------------------------------------------------------------------------------------
def _shards_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Pack training pairs into webdataset shards plus a shard index (OUT/shards.json) to train on with "
        "data.datasets.N.shards=[OUT/shards.json]. SRC is a folder, where files sharing a stem form one sample "
        "(dog.jpg + dog.txt; sub-folders allowed), or a .csv / .jsonl manifest with one row per sample and one "
        "column per member: a value naming a file (relative to the manifest's folder) is stored with that file's "
        "extension, a value in a text column is stored inline as .txt. Samples are shuffled (--seed) unless "
        "--no-shuffle; shards and index are written atomically, and the same input gives the same bytes.")
    parser.add_argument("source", metavar="SRC", help="a folder of files, or a .csv / .jsonl manifest")
    parser.add_argument("out", metavar="OUT", help="output folder for the shards and shards.json")
    parser.add_argument("--maxcount", type=int, default=1000, help="samples per shard (default 1000)")
    parser.add_argument("--prefix", default="shard", help="shard file names: PREFIX-000000.tar … (default shard)")
    parser.add_argument("--text-columns", default="text,caption",
                        help="manifest columns stored inline as .txt (default text,caption)")
    parser.add_argument("--seed", type=int, default=0, help="shuffle seed (default 0)")
    parser.add_argument("--no-shuffle", action="store_true", help="keep the source's order")


def _shards_run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..errors import ConfigError, InputError, MissingInputError
    from ..datasets.shards import INDEX_FILE, make_shards, samples_from_folder, samples_from_manifest

    source = Path(args.source)
    if args.maxcount < 1:
        raise ConfigError(f"--maxcount must be at least 1, got {args.maxcount}")
    if source.is_dir():
        samples = samples_from_folder(source)
    elif source.is_file():
        samples = samples_from_manifest(source, [c.strip() for c in args.text_columns.split(",") if c.strip()])
    else:
        raise MissingInputError(str(source), "no such folder or manifest")
    if not samples:
        raise InputError(str(source), "no samples (a folder needs files with extensions; a manifest, rows)")
    shards = make_shards(samples, args.out, args.maxcount, args.prefix, not args.no_shuffle, args.seed)
    print(f"wrote {len(samples)} samples in {len(shards)} shards to {args.out}; "
          f"train with data.datasets.0.shards=[{Path(args.out) / INDEX_FILE}]")
    return 0


DATASETS: dict[str, DatasetCommand] = {
    "shards": DatasetCommand("pack your pairs (a folder, or a CSV/JSONL manifest) into webdataset shards for "
                             "omniembed train", _shards_arguments, _shards_run),
    "omnidigits": DatasetCommand("digits 0-9 as image, spoken audio, caption, video and point cloud "
                                 "(MNIST + FSDD, or offline from scikit-learn + espeak-ng)",
                                 _omnidigits_arguments, _omnidigits_run),
}
"""dataset name → its command-line builder."""
