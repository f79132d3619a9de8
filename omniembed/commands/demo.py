"""``omniembed demo``: build OmniDigits, train every modality into one space, evaluate, index, search."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..demo import DemoConfig

    full, quick = DemoConfig(), DemoConfig.quick(Path("."))
    parser.add_argument("--out", default="omnidigits-demo", help="working folder (data, run, report, index)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: about two minutes end to end (for tests)")
    parser.add_argument("--source", default="all", choices=["all", "auto", "shared", "offline"],
                        help="every source at hand: MNIST + FSDD from --shared-root, sklearn digits, font renders, "
                             "espeak-ng voices, five point-cloud lifting recipes (all, the default); MNIST + FSDD "
                             "only (shared); sklearn digits + espeak-ng only (offline); shared when a root holding "
                             "them is given, else offline (auto)")
    parser.add_argument("--shared-root", default=None,
                        help="folder holding mnist/ and fsdd/, e.g. ../shared/data (default: $OMNIEMBED_SHARED_DATA; "
                             "without either, the offline sources)")
    parser.add_argument("--train", type=int, default=None,
                        help=f"training samples (default {full.n_train}; quick {quick.n_train})")
    parser.add_argument("--test", type=int, default=None,
                        help=f"test samples (default {full.n_test}; quick {quick.n_test})")
    parser.add_argument("--anchor-steps", type=int, default=None,
                        help=f"image–text steps of the anchor (default {full.anchor_steps}, ~2 min on 2 cores; "
                             f"quick {quick.anchor_steps})")
    parser.add_argument("--steps", type=int, default=None,
                        help=f"steps binding audio, video and point clouds to the anchor (default {full.steps}, "
                             f"~5.5 min on 2 cores; quick {quick.steps})")
    parser.add_argument("--seed", type=int, default=0)
    protocol = parser.add_argument_group("leave-one-source-out (instead of the index and searches)")
    protocol.add_argument("--loso", action="store_true",
                          help="train once per source without it and score it (OUT/loso.md, OUT/loso.json): every "
                               "source of the build, or those named by --leave-out")
    protocol.add_argument("--leave-out", action="append", default=None, metavar="SOURCE[+SOURCE…]",
                          help="a fold: a source to hold out, or several held out together joined by + (repeatable; "
                               "implies --loso), e.g. fonts, fsdd, espeak-ng-whisper, mnist+fsdd+lift-deep")
    protocol.add_argument("--grouped", action="store_true",
                          help="with --loso: hold out one source of each kind per fold — every source held out once "
                               "in 6 trainings instead of 14 (each fold also misses a source of the other kinds)")
    parser.add_argument("--serve", action="store_true",
                        help="then serve the search page over the demo's index (a finished demo is reused)")
    from .serve import add_server_arguments

    add_server_arguments(parser.add_argument_group("search page (with --serve)"))
    parser.add_argument("overrides", nargs="*", help="overrides of both recipes, key=value (e.g. optim.lr=1e-3)")


def run(args: argparse.Namespace) -> int:
    import dataclasses

    from ..demo import DemoConfig, run_demo

    shared_root = Path(args.shared_root) if args.shared_root else None
    base = (DemoConfig.quick(Path(args.out), args.source, args.seed, shared_root) if args.quick
            else DemoConfig(out=Path(args.out), source=args.source, seed=args.seed, shared_root=shared_root))
    sizes = {k: v for k, v in (("n_train", args.train), ("n_test", args.test), ("anchor_steps", args.anchor_steps),
                               ("steps", args.steps)) if v is not None}
    config = dataclasses.replace(base, overrides=list(args.overrides), **sizes)
    if args.loso or args.leave_out:
        from ..loso import run_loso

        run_loso(config, args.leave_out, grouped=args.grouped)
        return 0
    result = run_demo(config)
    total = sum(result.seconds.values())
    print(f"\ndone in {total:.0f} s: model {result.model_dir}, index {result.index_dir}, "
          f"report {result.report_dir / 'report.md'}")
    if args.serve:
        from ..serve import serve
        from .serve import server_config

        serve(result.index_dir, server_config(args), log_level=args.log_level)
    return 0
