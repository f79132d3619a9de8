"""Process-group set-up for training launched by ``torchrun`` or SLURM ``srun`` (or as one plain process).

``torchrun`` sets RANK / WORLD_SIZE / LOCAL_RANK / MASTER_ADDR / MASTER_PORT. Under ``srun`` (one task per GPU)
the SLURM variables are mapped onto them: SLURM_PROCID → RANK, SLURM_NTASKS → WORLD_SIZE,
SLURM_LOCALID → LOCAL_RANK; MASTER_ADDR, unless the batch script exports it, is the first host of
SLURM_JOB_NODELIST; MASTER_PORT, unless exported, is 29500 + SLURM_JOB_ID mod 1000, so that two jobs sharing a
node do not meet on one port. Without either, the run is a single process and no process group is created.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, NoReturn

import torch
import torch.distributed as dist

from omniembed.devices import resolve_device
from omniembed.errors import ConfigError

DEFAULT_PORT = "29500"


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands: global ``rank`` of ``world``, ``local_rank`` on its node, its ``device``."""

    rank: int
    world: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1


def launched_by_srun(env: dict[str, str] | None = None) -> bool:
    """Whether this process is one task of an ``srun`` step (and not a worker that torchrun started)."""
    env = os.environ if env is None else env
    return "RANK" not in env and "SLURM_PROCID" in env and "SLURM_NTASKS" in env


def env_from_slurm(env: dict[str, str] | None = None) -> dict[str, str]:
    """torchrun-style variables derived from SLURM's, for processes started by ``srun`` (torchrun's win)."""
    env = dict(os.environ if env is None else env)
    if not launched_by_srun(env):
        return {}
    master = env.get("MASTER_ADDR") or first_host(env.get("SLURM_JOB_NODELIST", env.get("SLURM_NODELIST", "")))
    if int(env["SLURM_NTASKS"]) > 1 and not master:
        raise ConfigError("running under SLURM with several tasks but neither MASTER_ADDR nor SLURM_JOB_NODELIST "
                          "is set: export MASTER_ADDR in the batch script, e.g. "
                          "MASTER_ADDR=$(scontrol show hostnames $SLURM_JOB_NODELIST | head -n1)")
    port = env.get("MASTER_PORT") or (str(int(DEFAULT_PORT) + int(env["SLURM_JOB_ID"]) % 1000)
                                      if env.get("SLURM_JOB_ID", "").isdigit() else DEFAULT_PORT)
    return {"RANK": env["SLURM_PROCID"], "WORLD_SIZE": env["SLURM_NTASKS"],
            "LOCAL_RANK": env.get("SLURM_LOCALID", "0"), "MASTER_ADDR": master or "127.0.0.1", "MASTER_PORT": port}


def first_host(nodelist: str) -> str:
    """The first host of a SLURM host list: ``gpu-node[017-020,031],login1`` → ``gpu-node017`` ("" for "")."""
    depth, end = 0, len(nodelist)
    for i, char in enumerate(nodelist):
        depth += {"[": 1, "]": -1}.get(char, 0)
        if char == "," and depth == 0:
            end = i
            break
    # each bracket holds ranges and single numbers; the first one starts the list (its zero padding kept)
    return re.sub(r"\[([^\]]*)\]", lambda m: re.split(r"[,-]", m.group(1))[0], nodelist[:end].strip())


def setup(device: str = "auto", timeout_s: float = 1800) -> DistInfo:
    """Initialise the default process group when launched with several processes (NCCL on GPU, gloo on CPU)."""
    os.environ.update(env_from_slurm())
    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if device != "auto":
        resolve_device(device, "train.device")  # a named error, not "Found no NVIDIA driver" from set_device
    use_cuda = torch.cuda.is_available() if device == "auto" else device.startswith("cuda")
    if use_cuda:
        # an srun task bound to its GPU (--gpus-per-task, --gpu-bind) sees that one device only
        dev = torch.device("cuda", local_rank % torch.cuda.device_count())
        torch.cuda.set_device(dev)
    else:
        dev = torch.device("cpu" if device == "auto" else device)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo", rank=rank, world_size=world,
                                timeout=timedelta(seconds=timeout_s), device_id=dev if use_cuda else None)
    return DistInfo(rank, world, local_rank, dev)


def teardown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def exit_process(code: int) -> NoReturn:
    """End this process of a multi-process run now, skipping interpreter finalisation (stdio is flushed first).

    After FSDP2 training, torch's autograd device threads and gloo's run-loop threads outlive
    ``destroy_process_group``: DTensor's sharding caches keep the device mesh, and with it the group, alive to the
    end. When Python finalises, a native thread that re-takes the GIL is ended with ``pthread_exit``, and the
    unwind through a ``noexcept`` frame aborts the process ("terminate called without an active exception",
    SIGABRT) after a run that succeeded. Call this only once everything the run writes is closed.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def all_gather_objects(obj: Any) -> list[Any]:
    """Every process's ``obj`` (picklable), in rank order; ``[obj]`` in a single process."""
    if not dist.is_initialized():
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def mean_over_ranks(values: torch.Tensor) -> torch.Tensor:
    """The mean of a tensor over processes (for logging), detached."""
    values = values.detach().clone()
    if dist.is_initialized():
        dist.all_reduce(values)
        values /= dist.get_world_size()
    return values
