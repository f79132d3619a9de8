"""Point-BERT's trunk: the group positions are added to the residual stream before **every** block.

ULIP's ``PointTransformer`` runs ``x = block(x + pos)`` for each block, so the positions accumulate in the
residual stream (after L blocks the stream holds L copies of ``pos`` plus the blocks' updates). OmniEmbed's own
point-cloud stem adds them once, like the other modalities' stems; converted ULIP / Point-BERT weights need
Point-BERT's way, so the stem then hands the positions on beside the tokens (:class:`PositionedTokens`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from omniembed.nn.tokens import Tokens
from omniembed.nn.transformer import Transformer


@dataclass
class PositionedTokens(Tokens):
    """Tokens ``[B, L, D]`` with their positions ``pos`` [B, L, D] kept apart, for a trunk that adds them
    before every block."""

    pos: torch.Tensor | None = None


class PositionEveryBlockTrunk(nn.Module):
    """``x = block(x + pos)`` for every block of a :class:`Transformer`: PositionedTokens → Tokens ``[B, L, D]``.
    The weights are the transformer's own (``transformer.*`` keys, as :class:`~omniembed.encoder.TransformerTrunk`)."""

    def __init__(self, transformer: Transformer):
        super().__init__()
        self.transformer = transformer

    def forward(self, x: PositionedTokens) -> Tokens:
        if x.pos is None:
            raise ValueError("this trunk adds positions before every block: the stem must hand them on")
        t = self.transformer.pre_norm(x.tokens)
        causal = self.transformer.config.causal
        for block in self.transformer.blocks:
            t = t + x.pos
            if self.transformer.grad_checkpointing and self.training and torch.is_grad_enabled():
                t = checkpoint(block, t, x.mask, causal, use_reentrant=False)
            else:
                t = block(t, x.mask, causal)
        return Tokens(t, x.mask, x.ids)
