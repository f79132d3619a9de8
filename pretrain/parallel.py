"""Data-parallel set-up of the training module: DDP (default) or FSDP2 ``fully_shard``, over the run's processes.

A one-process run is not wrapped. The module is :class:`~omniembed.pretrain.trainer.TrainingModule` — the model
plus the SigLIP biases — so the wrapper sees every tensor a step uses.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from omniembed.nn.transformer import Block

from . import distributed
from .config import ExperimentConfig
from .pair_plan import PairPlan


def wrap_parallel(module: nn.Module, config: ExperimentConfig, info: distributed.DistInfo,
                  plan: PairPlan) -> nn.Module:
    """DDP (default) or FSDP2 ``fully_shard`` (each transformer block, each encoder, the root); as is alone."""
    if not info.distributed:
        return module
    if config.train.parallel == "fsdp":
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import fully_shard

        mesh = init_device_mesh(info.device.type, (info.world,))
        # FSDP2 shards no 0-dim tensor (the logit scales): keep them replicated and average their gradients here
        scalars = {p for p in module.parameters() if p.ndim == 0}
        for p in scalars:
            if p.requires_grad:
                p.register_post_accumulate_grad_hook(_average_grad)
        for encoder in module.model.encoders.values():
            for block in [b for b in encoder.modules() if isinstance(b, Block)]:
                fully_shard(block, mesh=mesh)
            fully_shard(encoder, mesh=mesh, ignored_params=scalars)
        return fully_shard(module, mesh=mesh, ignored_params=scalars)
    return DistributedDataParallel(module, device_ids=[info.device.index] if info.device.type == "cuda" else None,
                                   find_unused_parameters=needs_unused_search(module, plan))


def _average_grad(param: torch.Tensor) -> None:
    torch.distributed.all_reduce(param.grad)
    param.grad /= torch.distributed.get_world_size()


def needs_unused_search(module: nn.Module, plan: PairPlan) -> bool:
    """Whether some step leaves a learning parameter without gradient (another dataset's tower or scale)."""
    trainable = {id(p) for p in module.parameters() if p.requires_grad}
    for ds in plan.datasets:
        used: set[int] = set()
        for m in ds.modalities:
            encoder = module.model.encoders[m]
            scale = {id(p) for p in encoder.scale_parameters()}
            used |= {id(p) for p in encoder.parameters()} - scale
            if m in ds.scales:
                used |= scale
        used |= {id(module.logit_bias[p.name]) for p in ds.pairs if p.name in module.logit_bias}
        if trainable - used:
            return True
    return False
