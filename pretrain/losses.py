"""Contrastive losses between two batches of unit embeddings: symmetric InfoNCE (CLIP) and sigmoid (SigLIP).

Both losses score a batch of pairs (a[i], b[i]) — rows of ``a`` [B, E] and ``b`` [B, E], L2-normalised — by
``logit_scale · a @ b.T`` and take the diagonal as the positives. Given ``groups`` [B] (int64, a dataset's
``group_key``: the class of each pair, say), every pair (a[i], b[j]) of one group is a positive instead, as UniCL
(Yang et al., 2022) scores image–label data: a row's target is spread evenly over its group's columns, and rows of
one class are no longer pushed apart as if they were negatives. Distinct groups give the diagonal losses exactly. The logit scale (inverse temperature) is a scalar
tensor, learnable (:class:`LogitScale`, CLIP: init 1/0.07, at most 100) or fixed (ImageBind's audio: 20).

Distributed (``torch.distributed`` initialised, world size W > 1): every process calls the loss alike with the same
B, and the rows of all processes are gathered in rank order into a global batch of N = W·B pairs. With
``local_loss`` a process scores only its own B rows against all N columns (labels offset by rank·B), otherwise
every process scores all N × N. Against one process holding the N pairs, with loss L:

- loss value: without ``local_loss`` every process returns L; with it the mean over processes is L.
- ``gather_with_grad=True`` (``torch.distributed.nn.functional.all_gather``, whose backward sums over processes):
  the gradient left on a process's B rows equals the one-process gradient of W·L on those rows, in both modes.
  DDP averages parameter gradients over processes (÷W), so parameters get exactly the one-process gradient of L.
- ``gather_with_grad=False`` (open_clip's gather without autograd, the process's own rows put back): a process's
  rows get the gradient of its own loss only. Without ``local_loss`` that is the one-process gradient of L (so after
  DDP averaging, parameters get L's gradient ÷ W: as training at lr / W); with ``local_loss`` the terms in which its
  rows are columns of other processes' rows are lost (an approximation, as in open_clip).
- logit scale and bias are replicated: each process gets the gradient of its own loss, and the mean over processes
  (what DDP applies) is the one-process gradient of L, in every mode.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_nn
import torch.nn.functional as F
from torch import nn

from omniembed.config import LogitScaleConfig
from omniembed.errors import ConfigError
from omniembed.nn import heads

CLIP_SCALE_INIT = 1 / 0.07
SIGLIP_SCALE_INIT = 10.0
SIGLIP_BIAS_INIT = -10.0
"""The SigLIP paper's initial logit scale t = 10 and bias b = −10."""


class LogitScale(heads.LogitScale):
    """exp(log_scale) clamped to ``max``: learnable (a parameter) or fixed (a buffer). ``forward()`` → scalar [].

    The same module as the encoders' postprocessor (state key ``log_scale``), built from keywords. The clamp is
    applied in the forward pass, as ImageBind does, so above ``max`` the parameter gets no gradient.
    """

    def __init__(self, init: float = CLIP_SCALE_INIT, learnable: bool = True, max: float = 100.0):
        if not 0 < init <= max:
            raise ConfigError(f"LogitScale: init must be in (0, max={max}], got {init}")
        super().__init__(LogitScaleConfig(init=init, learnable=learnable, max=max))


@dataclass(frozen=True)
class PairLossOutput:
    """One pair's loss and what a trainer logs beside it; scalar tensors [], all but ``loss`` detached.

    ``accuracy_ab``: share of the scored rows of ``a`` whose top-scoring column of ``b`` (over the gathered batch)
    is its partner; ``accuracy_ba`` the same from ``b`` to ``a``. Under ``local_loss`` these cover the process's own
    rows, so their mean over processes is the global top-1 accuracy.
    """

    loss: torch.Tensor
    accuracy_ab: torch.Tensor
    accuracy_ba: torch.Tensor
    logit_scale: torch.Tensor
    logit_bias: torch.Tensor | None = None

    @property
    def temperature(self) -> torch.Tensor:
        return 1.0 / self.logit_scale

    def metrics(self, name: str) -> dict[str, torch.Tensor]:
        """Detached scalars keyed for a log: ``loss/NAME``, ``top1/NAME/a_to_b``, ``temperature/NAME``, …"""
        out = {f"loss/{name}": self.loss.detach(), f"top1/{name}/a_to_b": self.accuracy_ab,
               f"top1/{name}/b_to_a": self.accuracy_ba, f"logit_scale/{name}": self.logit_scale,
               f"temperature/{name}": self.temperature}
        if self.logit_bias is not None:
            out[f"logit_bias/{name}"] = self.logit_bias
        return out


def gather_rows(x: torch.Tensor, with_grad: bool = True) -> torch.Tensor:
    """[B, E] on each of W processes → [W·B, E], rank order; ``x`` itself when not distributed.

    ``with_grad``: gradients of every process's use of the result flow back (summed) to each process's ``x``;
    otherwise only this process's own rows keep their autograd link.
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x
    if with_grad:
        return torch.cat(dist_nn.all_gather(x), dim=0)
    parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, x.detach().contiguous())
    parts[dist.get_rank()] = x
    return torch.cat(parts, dim=0)


@dataclass(frozen=True)
class _Gathered:
    """rows_a, rows_b [R, E]: the rows this process scores; all_a, all_b [N, E]: every process's rows.

    ``first``: the index in ``all_*`` of ``rows_*[0]``, the offset of the labels. ``all_groups`` [N]: every row's
    group, or None when each row's only positive is its partner.
    """

    rows_a: torch.Tensor
    rows_b: torch.Tensor
    all_a: torch.Tensor
    all_b: torch.Tensor
    first: int
    all_groups: torch.Tensor | None = None

    @property
    def labels(self) -> torch.Tensor:
        """[R] index of each scored row's partner among the N columns."""
        return torch.arange(len(self.rows_a), device=self.rows_a.device) + self.first

    @property
    def scores_all_rows(self) -> bool:
        return len(self.rows_a) == len(self.all_a)

    def positives(self) -> torch.Tensor:
        """[R, N] bool: the columns that are positives of each scored row (its partner, or its group's)."""
        if self.all_groups is None:
            out = torch.zeros(len(self.rows_a), len(self.all_a), dtype=torch.bool, device=self.rows_a.device)
            out[torch.arange(len(self.rows_a), device=out.device), self.labels] = True
            return out
        mine = self.all_groups[self.first:self.first + len(self.rows_a)]
        return mine[:, None] == self.all_groups[None, :]


class _GatheredPairLoss(nn.Module):
    """The distributed options both losses share, and the gather of a pair's rows."""

    def __init__(self, local_loss: bool = False, gather_with_grad: bool = True):
        super().__init__()
        self.local_loss = local_loss
        self.gather_with_grad = gather_with_grad

    def extra_repr(self) -> str:
        return f"local_loss={self.local_loss}, gather_with_grad={self.gather_with_grad}"

    def _gather(self, a: torch.Tensor, b: torch.Tensor, groups: torch.Tensor | None) -> _Gathered:
        _check_pair(a, b)
        if groups is not None and groups.shape != (len(a),):
            raise ConfigError(f"contrastive loss: groups must be [B] = [{len(a)}], got {tuple(groups.shape)}")
        all_a, all_b = gather_rows(a, self.gather_with_grad), gather_rows(b, self.gather_with_grad)
        all_groups = None if groups is None else gather_rows(groups.to(a.device), with_grad=False)
        if self.local_loss and len(all_a) > len(a):
            return _Gathered(a, b, all_a, all_b, dist.get_rank() * len(a), all_groups)
        return _Gathered(all_a, all_b, all_a, all_b, 0, all_groups)


class ContrastiveLoss(_GatheredPairLoss):
    """Symmetric InfoNCE: (CE(a → b) + CE(b → a)) / 2 over ``logit_scale · a @ b.T``, the diagonal positive.

    a, b: [B, E] unit rows; logit_scale: scalar tensor [] (or a float for a fixed one); groups: [B] int64 or
    None (see the module docstring). Returns a scalar []. See the module docstring for what ``local_loss`` and
    ``gather_with_grad`` change under torch.distributed.
    """

    def forward(self, a: torch.Tensor, b: torch.Tensor, logit_scale: torch.Tensor | float,
                groups: torch.Tensor | None = None) -> torch.Tensor:
        return self.detailed(a, b, logit_scale, groups).loss

    def detailed(self, a: torch.Tensor, b: torch.Tensor, logit_scale: torch.Tensor | float,
                 groups: torch.Tensor | None = None) -> PairLossOutput:
        """The loss with its top-1 accuracies and scale, for logging."""
        g = self._gather(a, b, groups)
        scale = _as_scalar(logit_scale, a, "logit_scale")
        logits_ab = scale * g.rows_a @ g.all_b.T  # [R, N]
        logits_ba = logits_ab.T if g.scores_all_rows else scale * g.rows_b @ g.all_a.T
        if groups is None:
            labels = g.labels
            loss = (F.cross_entropy(logits_ab, labels) + F.cross_entropy(logits_ba, labels)) / 2
            return PairLossOutput(loss, _top1(logits_ab, labels), _top1(logits_ba, labels), scale.detach())
        positives = g.positives()  # [R, N], symmetric in a and b: a row's group is its partner's
        targets = positives.to(logits_ab.dtype)
        targets = targets / targets.sum(dim=1, keepdim=True)
        loss = (F.cross_entropy(logits_ab, targets) + F.cross_entropy(logits_ba, targets)) / 2
        return PairLossOutput(loss, _top1_in(logits_ab, positives), _top1_in(logits_ba, positives), scale.detach())


class SigLIPLoss(_GatheredPairLoss):
    """Sigmoid loss: −(1/R) Σ_ij log σ(z_ij · (logit_scale · a_i·b_j + logit_bias)), z = +1 on the diagonal else −1.

    a, b: [B, E] unit rows; logit_scale, logit_bias: scalar tensors [] (or floats; no bias when None). The paper
    learns both, from :data:`SIGLIP_SCALE_INIT` and :data:`SIGLIP_BIAS_INIT`. R is the number of scored rows (B·W,
    or B with ``local_loss``, where rows of ``a`` are scored against all of ``b``). With ``groups`` [B], z = +1 on
    every pair of one group. The distributed version gathers with all-gather rather than open_clip's ring of
    neighbour exchanges; ``a`` is gathered too, for ``accuracy_ba``. Returns a scalar [].
    """

    def forward(self, a: torch.Tensor, b: torch.Tensor, logit_scale: torch.Tensor | float,
                logit_bias: torch.Tensor | float | None = None, groups: torch.Tensor | None = None) -> torch.Tensor:
        return self.detailed(a, b, logit_scale, logit_bias, groups).loss

    def detailed(self, a: torch.Tensor, b: torch.Tensor, logit_scale: torch.Tensor | float,
                 logit_bias: torch.Tensor | float | None = None, groups: torch.Tensor | None = None
                 ) -> PairLossOutput:
        """The loss with its top-1 accuracies, scale and bias, for logging."""
        g = self._gather(a, b, groups)
        scale = _as_scalar(logit_scale, a, "logit_scale")
        bias = None if logit_bias is None else _as_scalar(logit_bias, a, "logit_bias", positive=False)
        logits = scale * g.rows_a @ g.all_b.T  # [R, N]
        if bias is not None:
            logits = logits + bias
        positives = g.positives()
        signs = positives.to(logits.dtype) * 2 - 1
        loss = -F.logsigmoid(signs * logits).sum() / len(logits)
        with torch.no_grad():
            logits_ba = logits.T if g.scores_all_rows else scale * g.rows_b @ g.all_a.T
        return PairLossOutput(loss, _top1_in(logits, positives), _top1_in(logits_ba, positives), scale.detach(),
                              None if bias is None else bias.detach())


def _check_pair(a: torch.Tensor, b: torch.Tensor) -> None:
    if a.ndim != 2 or a.shape != b.shape or len(a) == 0:
        raise ConfigError(f"contrastive loss: a and b must both be [B, E] with B > 0, got a {tuple(a.shape)} "
                          f"and b {tuple(b.shape)}")


def _as_scalar(value: torch.Tensor | float, like: torch.Tensor, name: str, positive: bool = True) -> torch.Tensor:
    """A float or one-element tensor → a scalar tensor [] on ``like``'s device (floats take its dtype)."""
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ConfigError(f"contrastive loss: {name} must be a scalar, got shape {tuple(value.shape)}")
        return value.reshape(())
    if positive and not (value > 0 and math.isfinite(value)):
        raise ConfigError(f"contrastive loss: {name} must be a positive finite number, got {value}")
    return torch.tensor(float(value), dtype=like.dtype, device=like.device)


@torch.no_grad()
def _top1(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Share of rows of ``logits`` [R, N] whose argmax is the row's label [R]; a scalar []."""
    return (logits.argmax(dim=1) == labels).float().mean()


@torch.no_grad()
def _top1_in(logits: torch.Tensor, positives: torch.Tensor) -> torch.Tensor:
    """Share of rows of ``logits`` [R, N] whose argmax is one of the row's positives ([R, N] bool); a scalar []."""
    return positives.gather(1, logits.argmax(dim=1, keepdim=True)).float().mean()
