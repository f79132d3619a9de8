"""``omniembed demo``: build OmniDigits, train every modality into one space, evaluate, index, search."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="omnidigits-demo", help="working folder (data, run, report, index)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a minute end to end (for tests)")
    parser.add_argument("--source", default="auto", choices=["auto", "shared", "offline"],
                        help="MNIST + FSDD from ../shared/data (shared), sklearn digits + espeak-ng (offline), "
                             "or shared when present (auto)")
    parser.add_argument("--train", type=int, default=None, help="training samples (default 2000; quick 200)")
    parser.add_argument("--test", type=int, default=None, help="test samples (default 500; quick 60)")
    parser.add_argument("--anchor-steps", type=int, default=None,
                        help="image–text steps of the anchor (default 500, ~2 min on 2 cores; quick 150)")
    parser.add_argument("--steps", type=int, default=None,
                        help="steps binding audio, video and point clouds to the anchor (default 450, ~6.5 min; "
                             "quick 100)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("overrides", nargs="*", help="overrides of both recipes, key=value (e.g. optim.lr=1e-3)")


def run(args: argparse.Namespace) -> int:
    import dataclasses

    from ..demo import DemoConfig, run_demo

    base = (DemoConfig.quick(Path(args.out), args.source, args.seed) if args.quick
            else DemoConfig(out=Path(args.out), source=args.source, seed=args.seed))
    sizes = {k: v for k, v in (("n_train", args.train), ("n_test", args.test), ("anchor_steps", args.anchor_steps),
                               ("steps", args.steps)) if v is not None}
    result = run_demo(dataclasses.replace(base, overrides=list(args.overrides), **sizes))
    total = sum(result.seconds.values())
    print(f"\ndone in {total:.0f} s: model {result.model_dir}, index {result.index_dir}, "
          f"report {result.report_dir / 'report.md'}")
    return 0
