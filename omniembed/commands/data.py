"""``omniembed data DATASET OUT ...``: build a dataset; one sub-command per entry of :data:`DATASETS`."""

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
                             "auto (default): shared when present")
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
        log=lambda line: print(line, file=sys.stderr, flush=True))
    seconds = time.perf_counter() - start
    for split, counts in manifest.counts.items():
        print(f"{split}: " + ", ".join(f"{n} {m}" for m, n in counts.items()))
    print(f"built OmniDigits ({manifest.source} sources: {', '.join(manifest.sources.values())}) in {args.out} "
          f"in {seconds:.1f} s; {len(manifest.skipped)} source files skipped (listed in manifest.json)")
    return 0


DATASETS: dict[str, DatasetCommand] = {
    "omnidigits": DatasetCommand("digits 0-9 as image, spoken audio, caption, video and point cloud "
                                 "(MNIST + FSDD, or offline from scikit-learn + espeak-ng)",
                                 _omnidigits_arguments, _omnidigits_run),
}
"""dataset name → its command-line builder."""
