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
    where the head pools by id (text EOS), else None.
    """

    tokens: torch.Tensor
    mask: torch.Tensor | None = None
    ids: torch.Tensor | None = None


class TransformerTrunk(nn.Module):
    """Adapts :class:`~omniembed.nn.transformer.Transformer` to the Tokens interface."""

    def __init__(self, transformer: nn.Module):
        super().__init__()
        self.transformer = transformer

    def forward(self, x: Tokens) -> Tokens:
        return replace(x, tokens=self.transformer(x.tokens, x.mask))


class PoolingHead(nn.Module):
    """Adapts a TokenHead (tokens [B, L, D], ids) → [B, E] to the Tokens interface."""

    def __init__(self, head: nn.Module):
        super().__init__()
        self.head = head

    def forward(self, x: Tokens) -> torch.Tensor:
        return self.head(x.tokens, x.ids)
