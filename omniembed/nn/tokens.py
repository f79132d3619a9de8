"""What flows from a stem to a trunk to a head (:class:`Tokens`), and the adapters that put plain token layers on
that interface."""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import nn


@dataclass
class Tokens:
    """What flows from stem to trunk to head.

    ``tokens`` [B, L, D]; ``mask`` an attention mask for the trunk (or None); ``ids`` the token ids [B, L]
    where the head pools by id (text EOS), else None; ``at`` [B] the position in ``tokens`` of the one token per
    sample the head reads, when it reads one (CLS, EOS), else None. ``at`` is set before the trunk runs, so that a
    trunk may compute its last layer at those positions only; one that does hands on tokens [B, 1, D] and ``at``
    all 0.
    """

    tokens: torch.Tensor
    mask: torch.Tensor | None = None
    ids: torch.Tensor | None = None
    at: torch.Tensor | None = None


class TransformerTrunk(nn.Module):
    """Adapts :class:`~omniembed.nn.transformer.Transformer` to the Tokens interface. When the head reads one token
    per sample (``x.at`` set), the last block computes that token only: Tokens [B, L, D] → Tokens [B, 1, D]."""

    def __init__(self, transformer: nn.Module):
        super().__init__()
        self.transformer = transformer

    def forward(self, x: Tokens) -> Tokens:
        if x.at is None:
            return replace(x, tokens=self.transformer(x.tokens, x.mask))
        return replace(x, tokens=self.transformer(x.tokens, x.mask, rows=x.at), mask=None,
                       at=torch.zeros_like(x.at))


class PoolingHead(nn.Module):
    """Adapts a :class:`~omniembed.nn.heads.TokenHead` (tokens [B, L, D], ids, at) → [B, E] to the Tokens
    interface."""

    def __init__(self, head: nn.Module):
        super().__init__()
        self.head = head

    def mark(self, x: Tokens) -> Tokens:
        """``x`` with ``at`` set to the positions the head will read (None when it reads all tokens)."""
        return replace(x, at=self.head.positions(x.tokens, x.ids))

    def forward(self, x: Tokens) -> torch.Tensor:
        return self.head(x.tokens, x.ids, x.at)
