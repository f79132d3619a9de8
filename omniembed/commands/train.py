"""``omniembed train RECIPE [--nproc N] [--resume] [key=value ...]``: contrastive pretraining (wraps torchrun).

One process runs in place; several are started by ``torchrun`` (``--standalone`` on one node, or a c10d
rendezvous across nodes with ``--nnodes``/``--node-rank``/``--master-addr``). Under SLURM, start one task per
GPU with ``srun omniembed train RECIPE`` instead: each task runs in place, whatever GPUs it sees, and joins the
job's process group from SLURM_PROCID / SLURM_NTASKS / SLURM_LOCALID (``omniembed.pretrain.distributed``).
"""

from __future__ import annotations

import argparse
import subprocess
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.usage = "%(prog)s CONFIG [key=value ...] [--nproc N] [--resume] [--nnodes N --node-rank R --master-addr A]"
    _add_options(parser)
    # argparse cannot mix options with a variable-length positional list, so everything from CONFIG on is taken
    # as is and parsed again (intermixed) in run(): `omniembed train cfg.yaml --nproc 2 optim.lr=1e-4 --resume`.
    parser.add_argument("args", nargs=argparse.REMAINDER, metavar="CONFIG [key=value ...]",
                        help="experiment recipe (a .yaml path, or a shipped recipe name such as image_text_tiny), "
                             "then dotted overrides with YAML values, "
                             "e.g. pretrain/recipes/image_text_tiny.yaml optim.lr=1e-4 data.batch_size=512")


def _add_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--nproc", type=int, default=None,
                        help="processes on this node (default: one per visible GPU, else 1)")
    parser.add_argument("--nnodes", type=int, default=1, help="nodes in the job (default 1)")
    parser.add_argument("--node-rank", type=int, default=0, help="this node's rank (multi-node)")
    parser.add_argument("--master-addr", default="127.0.0.1", help="rendezvous host (multi-node)")
    parser.add_argument("--master-port", type=int, default=29500, help="rendezvous port (multi-node)")
    parser.add_argument("--resume", action="store_true", help="continue from the run's latest checkpoint")


def parse_tail(args: argparse.Namespace) -> argparse.Namespace:
    """CONFIG, overrides and any options after CONFIG, on top of the options given before it."""
    if not hasattr(args, "args"):  # parsed already
        return args
    parser = argparse.ArgumentParser(prog="omniembed train")
    _add_options(parser)
    parser.add_argument("config")
    parser.add_argument("overrides", nargs="*")
    namespace = argparse.Namespace(**{k: v for k, v in vars(args).items() if k != "args"})
    return parser.parse_intermixed_args(args.args, namespace=namespace)


def run(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    from ..pretrain.config import load_config
    from ..pretrain.distributed import launched_by_srun

    args = parse_tail(args)
    load_config(args.config, args.overrides)  # fail here, once, rather than in every process
    srun = launched_by_srun()
    if srun and ((args.nproc or 1) > 1 or args.nnodes > 1):
        raise ConfigError("under srun every task is one training process: start one task per GPU "
                          "(srun --ntasks-per-node=GPUS) and drop --nproc/--nnodes")
    nproc = args.nproc if args.nproc is not None else 1 if srun else default_nproc()
    tail = [args.config, *args.overrides] + (["--resume"] if args.resume else [])
    if nproc == 1 and args.nnodes == 1:
        from ..pretrain.trainer import main

        return main(tail)
    return subprocess.call(torchrun_command(nproc, args) + tail)


def torchrun_command(nproc: int, args: argparse.Namespace) -> list[str]:
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}"]
    if args.nnodes == 1:
        cmd.append("--standalone")
    else:
        cmd += [f"--nnodes={args.nnodes}", f"--node_rank={args.node_rank}", "--rdzv_backend=c10d",
                f"--rdzv_endpoint={args.master_addr}:{args.master_port}"]
    return cmd + ["-m", "omniembed.pretrain.trainer"]


def default_nproc() -> int:
    import torch

    return torch.cuda.device_count() or 1


if __name__ == "__main__":  # python -m omniembed.commands.train …, before the cli registers the subcommand
    _parser = argparse.ArgumentParser(prog="omniembed train", description=__doc__.split("\n")[0])
    add_arguments(_parser)
    sys.exit(run(_parser.parse_args()))
