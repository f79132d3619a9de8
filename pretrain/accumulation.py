"""One optimizer step's backward pass, over one batch or k micro-batches (``train.accum_steps``), exactly.

A contrastive loss couples every row of the batch with every other, so summing k micro-batch losses is not the
loss of their union (each row would only meet its own micro-batch's negatives). As open_clip's ``--accum-freq``:

1. forward every micro-batch without autograd and cache its unit embeddings ([B/k, E] per modality: tiny);
2. for each micro-batch j in turn, forward it again with autograd and score the concatenation of the cached
   embeddings with j's live ones put in place — the loss of the whole batch, in the same row order — and
   backpropagate. Only j's rows are live, so backward j leaves exactly the part of the whole batch's gradient
   that flows through j's rows, and the k backward passes sum to the one-batch gradient.

Beyond open_clip, what makes it exact rather than close:

- the logit scales and biases are live in the last pass only (open_clip counts their gradient k times);
- each micro-batch's recompute replays the random draws (drop-path) of its cached pass;
- batch-norm running statistics are put back after the caching pass, so each micro-batch updates them once.

Memory is that of one micro-batch's activations. Towers that do not learn are run once, in the caching pass.
The gathered, local-loss and DDP/FSDP2 options compose: a process scores the rows of all its k micro-batches
against every process's rows, as it would score its whole batch, and gradient synchronisation waits for the last
pass (``no_sync`` / ``set_requires_gradient_sync``). A batch-norm tower sees micro-batch statistics, as it would
at that batch size, and augmentation (``data.augment``) draws for each micro-batch apart.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any, Iterator, Protocol, Sequence

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

if TYPE_CHECKING:
    from .pair_plan import PlannedPair


class Objective(Protocol):
    """What the step scores with: the pairs of a dataset, and the loss over the step's embeddings."""

    def pairs_of(self, dataset: int) -> Sequence[PlannedPair]: ...

    def __call__(self, dataset: int, embeddings: dict[str, torch.Tensor], scales: dict[str, torch.Tensor],
                 biases: dict[str, torch.Tensor], groups: torch.Tensor | None = None
                 ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]: ...


def backward_step(module: nn.Module, objective: Objective, micro_batches: list[dict[str, Any]], dataset: int,
                  autocast: contextlib.AbstractContextManager, groups: torch.Tensor | None = None
                  ) -> dict[str, torch.Tensor]:
    """Accumulate into ``.grad`` the gradient of the loss of the union of ``micro_batches`` (each
    {modality: collated inputs}, in row order); returns the loss's detached metrics. ``groups``: [B] the whole
    batch's row groups (the loss's positives), or None.

    ``module(inputs, pairs)`` → ({modality: unit embeddings [b, E]}, {other: logit scale []}, {"a-b": bias []}),
    as :class:`~omniembed.pretrain.trainer.TrainingModule` (possibly wrapped in DDP or FSDP2).
    """
    pairs = objective.pairs_of(dataset)
    if len(micro_batches) == 1:
        with autocast:
            embeddings, scales, biases = module(micro_batches[0], pairs)
        loss, metrics = objective(dataset, embeddings, scales, biases, groups)
        loss.backward()
        return metrics

    learning = learning_modalities(module)
    device = _device_of(module)
    cached: list[dict[str, torch.Tensor]] = []
    draws: list[RandomState] = []
    with torch.no_grad(), kept_batch_norm_statistics(module), autocast:
        for inputs in micro_batches:
            draws.append(RandomState.capture(device))
            cached.append({m: e.detach() for m, e in module(inputs, pairs)[0].items()})
    after = RandomState.capture(device)

    last = len(micro_batches) - 1
    for j, inputs in enumerate(micro_batches):
        draws[j].restore()
        with gradient_sync(module, j == last):
            with autocast:
                live, scales, biases = module({m: x for m, x in inputs.items() if m in learning}, pairs)
            if j != last:
                scales = {k: v.detach() for k, v in scales.items()}
                biases = {k: v.detach() for k, v in biases.items()}
            embeddings = {m: torch.cat([live[m] if i == j and m in live else part[m] for i, part in enumerate(cached)])
                          for m in cached[0]}
            loss, metrics = objective(dataset, embeddings, scales, biases, groups)
            loss.backward()
    after.restore()
    return metrics


def learning_modalities(module: nn.Module) -> set[str]:
    """Modalities whose tower has a parameter that learns (LoRA adapters on a frozen tower count)."""
    inner = getattr(module, "module", module)  # DDP keeps the training module as .module; FSDP2 is the module
    return {m for m, e in inner.model.encoders.items() if any(p.requires_grad for p in e.parameters())}


@contextlib.contextmanager
def gradient_sync(module: nn.Module, sync: bool) -> Iterator[None]:
    """Let this backward pass reduce gradients over processes only when ``sync`` (the last micro-batch)."""
    if sync:
        yield
    elif hasattr(module, "no_sync"):  # DDP
        with module.no_sync():
            yield
    elif hasattr(module, "set_requires_gradient_sync"):  # FSDP2
        module.set_requires_gradient_sync(False)
        try:
            yield
        finally:
            module.set_requires_gradient_sync(True)
    else:
        yield


@contextlib.contextmanager
def kept_batch_norm_statistics(module: nn.Module) -> Iterator[None]:
    """Put batch-norm running statistics back as they were on exit (the caching pass must not count)."""
    saved = [(b, b.clone()) for m in module.modules() if isinstance(m, _BatchNorm) and m.training
             for b in m.buffers()]
    try:
        yield
    finally:
        with torch.no_grad():
            for buffer, value in saved:
                buffer.copy_(value)


class RandomState:
    """The CPU generator's state, and the CUDA device's when the module lives there."""

    def __init__(self, cpu: torch.Tensor, cuda: torch.Tensor | None, device: torch.device):
        self.cpu, self.cuda, self.device = cpu, cuda, device

    @classmethod
    def capture(cls, device: torch.device) -> "RandomState":
        cuda = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
        return cls(torch.get_rng_state(), cuda, device)

    def restore(self) -> None:
        torch.set_rng_state(self.cpu)
        if self.cuda is not None:
            torch.cuda.set_rng_state(self.cuda, self.device)


def _device_of(module: nn.Module) -> torch.device:
    param = next(module.parameters(), None)
    if param is None:
        return torch.device("cpu")
    return param.device if not hasattr(param, "to_local") else param.to_local().device
