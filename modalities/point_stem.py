"""Point-BERT's tokenizer stem: centred groups (:func:`~.point_groups.group_points`) → mini-PointNet → tokens with
learned centre positions and a CLS token."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from omniembed.nn.tokens import Tokens

from .point_groups import FPS_RULES, group_points
from .point_trunk import PositionedTokens


class PointwiseConv(nn.Conv1d):
    """A kernel-1 ``Conv1d`` applied as one matrix product over the last axis: ``[..., in]`` → ``[..., out]``.

    Its parameters are the convolution's (``weight [out, in, 1]``, ``bias [out]``), as Point-BERT and ULIP
    checkpoints store them; points stay channels-last, so a batch of groups is one GEMM instead of a convolution
    over thousands of short sequences (CPU, 1 thread: the demo's cloud tower at 64 groups of 16, forward and
    backward, 1.6× faster; Point-BERT's stem, 512 groups of 32, inference 1.3×)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight[..., 0], self.bias)


class GroupContextConv(PointwiseConv):
    """A :class:`PointwiseConv` over each point's features joined to its group's pooled feature,
    ``cat([pooled, points])``, computed without building the join: the pooled half of the weight is applied once
    per group and broadcast over its points. Same parameters (``weight [out, 2C, 1]``) and result as the
    convolution over the concatenation, with a third fewer multiply-adds in Point-BERT's stem.

    ``points [..., K, C]`` and ``pooled [..., 1, C]`` → ``[..., K, out]``."""

    def forward(self, points: torch.Tensor, pooled: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        *groups, k, c = points.shape
        weight = self.weight[..., 0]
        # one 2-D product, then an out-of-place add: an in-place add on the view F.linear returns for 3-D input
        # would make autograd rebuild the whole output through as_strided in the backward
        per_point = F.linear(points.reshape(-1, c), weight[:, c:], self.bias).view(*groups, k, -1)
        return per_point + F.linear(pooled, weight[:, :c])


class MiniPointNet(nn.Module):
    """Point-BERT's group encoder: shared MLP → max-pool → concat the pooled feature to every point → shared MLP
    → max-pool. ``[B, G, K, C]`` → ``[B, G, out_dim]``; widths h, 2h | 4h, 4h (Point-BERT: h = 128). The shared
    MLPs run on the points channels-last (:class:`PointwiseConv`, batch norm over every point of the batch, as
    Point-BERT's ``BatchNorm1d`` over ``[B·G, C, K]``), and the concatenation is never built
    (:class:`GroupContextConv`). CPU, 1 thread, against the convolution over the concatenation with ``amax``
    pooling: forward and backward 1.1–1.4× faster, inference 1.2–1.4× (h 32 and 128, 32 and 64 groups of 16).
    """

    def __init__(self, in_channels: int, hidden: int, out_dim: int):
        super().__init__()
        self.first = nn.Sequential(PointwiseConv(in_channels, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True),
                                   PointwiseConv(hidden, 2 * hidden))
        self.second = nn.Sequential(GroupContextConv(4 * hidden, 4 * hidden), nn.BatchNorm1d(4 * hidden),
                                    nn.ReLU(inplace=True), PointwiseConv(4 * hidden, out_dim))

    def forward(self, groups: torch.Tensor) -> torch.Tensor:
        b, g, k, ch = groups.shape
        x = self.first(groups.reshape(b * g * k, ch)).view(b * g, k, -1)  # [BG, K, 2h]
        context, *rest = self.second
        x = context(x, _max_over_points(x, keepdim=True)).view(b * g * k, -1)  # [BGK, 4h]
        for layer in rest:
            x = layer(x)
        return _max_over_points(x.view(b * g, k, -1)).view(b, g, -1)  # [B, G, out]


def _max_over_points(x: torch.Tensor, keepdim: bool = False) -> torch.Tensor:
    """``[BG, K, C]`` → the max over K, ``[BG, (1,) C]``. Under autograd ``max``, whose backward scatters to the
    selected point instead of comparing every point against the max as ``amax``'s does (2× faster on CPU; the
    gradients differ only between exactly tied points); ``amax`` otherwise, which skips the indices."""
    if x.requires_grad:
        return x.max(dim=1, keepdim=keepdim).values
    return x.amax(dim=1, keepdim=keepdim)


class PointGroupStem(nn.Module):
    """Point-BERT's tokenizer: clouds ``[B, N, 3 + E]`` → Tokens ``[B, 1 + G, width]``.

    FPS picks ``n_groups`` centres (``rule``: one of :data:`FPS_RULES`), kNN takes ``group_size`` points around
    each, :class:`MiniPointNet` embeds each centred group and a Linear maps it to ``width``; a learned MLP of the
    centre coordinates is the position, and a CLS token (with its own learned position) is put first. By
    default the positions are added here, once, like the other modalities' stems; with ``pos_every_block``
    they are handed on apart (:class:`~.point_trunk.PositionedTokens`) for a trunk that adds them before every
    block, as Point-BERT does.
    """

    def __init__(self, in_channels: int, n_groups: int, group_size: int, width: int, encoder_dims: int,
                 hidden: int, pos_hidden: int, rule: str = "order_free", pos_every_block: bool = False):
        super().__init__()
        if rule not in FPS_RULES:
            raise ValueError(f"unknown farthest-point sampling rule '{rule}' (choose from {', '.join(FPS_RULES)})")
        self.n_groups = n_groups
        self.group_size = group_size
        self.rule = rule
        self.pos_every_block = pos_every_block
        self.encoder = MiniPointNet(in_channels, hidden, encoder_dims)
        self.reduce = nn.Linear(encoder_dims, width)
        self.pos_embed = nn.Sequential(nn.Linear(3, pos_hidden), nn.GELU(), nn.Linear(pos_hidden, width))
        self.cls_token = nn.Parameter(torch.zeros(1, 1, width))
        self.cls_pos = nn.Parameter(torch.zeros(1, 1, width))
        nn.init.normal_(self.cls_token, std=0.02)
        nn.init.normal_(self.cls_pos, std=0.02)

    def forward(self, clouds: torch.Tensor) -> Tokens:
        groups, centres = group_points(clouds, self.n_groups, self.group_size, self.rule)
        tokens = self.reduce(self.encoder(groups))  # [B, G, D]
        b = tokens.shape[0]
        tokens = torch.cat([self.cls_token.expand(b, -1, -1), tokens], dim=1)
        pos = torch.cat([self.cls_pos.expand(b, -1, -1), self.pos_embed(centres)], dim=1)
        return PositionedTokens(tokens, pos=pos) if self.pos_every_block else Tokens(tokens + pos)
