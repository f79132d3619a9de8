"""Heads (tokens → one vector in the shared space) and the postprocessor (L2-normalise + logit scale)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..config import HeadConfig, LogitScaleConfig
from .transformer import take_rows


def _first(tokens: torch.Tensor, ids: torch.Tensor | None) -> torch.Tensor:
    return torch.zeros(tokens.shape[0], dtype=torch.long, device=tokens.device)


def _eos(tokens: torch.Tensor, ids: torch.Tensor | None) -> torch.Tensor:
    if ids is None:
        raise ValueError("EOS pooling needs the token ids")
    return ids.argmax(dim=-1)


def _mean(tokens: torch.Tensor, ids: torch.Tensor | None) -> torch.Tensor:
    return tokens[:, 1:].mean(dim=1)


def _cls_max(tokens: torch.Tensor, ids: torch.Tensor | None) -> torch.Tensor:
    return torch.cat([tokens[:, 0], tokens[:, 1:].amax(dim=1)], dim=-1)


@dataclass(frozen=True)
class Pool:
    """How a head reads one vector per sample from tokens [B, L, D] (and token ids [B, L]): at one position
    (``position``: tokens, ids → [B] indices) or from all of them (``reduce``: tokens, ids → [B, mult · D])."""

    position: Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor] | None = None
    reduce: Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor] | None = None
    mult: int = 1


POOLS = {"cls": Pool(position=_first), "eos": Pool(position=_eos), "mean": Pool(reduce=_mean),
         "cls_max": Pool(reduce=_cls_max, mult=2)}
"""pool name → how it reads the tokens (:class:`Pool`)."""


class TokenHead(nn.Module):
    """LayerNorm → pool → Linear to the shared dim. tokens [B, L, D] (+ ids [B, L]) → [B, E].

    A pool that reads one position per sample (``cls``, ``eos``) says which beforehand (:meth:`positions`), so that
    a trunk may compute its last layer at those positions only and hand on tokens [B, 1, D] with ``at`` all 0.
    """

    def __init__(self, config: HeadConfig, width: int, embed_dim: int):
        super().__init__()
        if config.pool not in POOLS:
            raise ValueError(f"unknown head pool '{config.pool}' (choose from {', '.join(POOLS)})")
        self.kind = POOLS[config.pool]
        self.norm = nn.LayerNorm(width, eps=config.norm_eps) if config.norm else nn.Identity()
        self.proj = nn.Linear(width * self.kind.mult, embed_dim, bias=config.bias)

    def positions(self, tokens: torch.Tensor, ids: torch.Tensor | None = None) -> torch.Tensor | None:
        """The position [B] each sample's vector is read from, or None when the pool reads all tokens."""
        return None if self.kind.position is None else self.kind.position(tokens, ids)

    def read(self, tokens: torch.Tensor, ids: torch.Tensor | None = None,
             at: torch.Tensor | None = None) -> torch.Tensor:
        """The normalised pooled vectors [B, mult · D]; ``at`` [B]: the positions to read instead of the pool's own
        (for tokens a trunk has cut down to them)."""
        if self.kind.reduce is not None:
            return self.kind.reduce(self.norm(tokens), ids)
        at = self.kind.position(tokens, ids) if at is None else at
        return self.norm(take_rows(tokens, at)[:, 0])

    def forward(self, tokens: torch.Tensor, ids: torch.Tensor | None = None,
                at: torch.Tensor | None = None) -> torch.Tensor:
        return self.proj(self.read(tokens, ids, at))


class LogitScale(nn.Module):
    """exp(log_scale) clamped to ``max``; learnable (CLIP, init 1/0.07) or fixed (ImageBind audio: 20)."""

    def __init__(self, config: LogitScaleConfig):
        super().__init__()
        self.max = config.max
        value = torch.tensor(math.log(config.init))
        if config.learnable:
            self.log_scale = nn.Parameter(value)
        else:
            self.register_buffer("log_scale", value)

    def forward(self) -> torch.Tensor:
        return self.log_scale.exp().clamp(max=self.max)


class Postprocess(nn.Module):
    """L2-normalise the last dim and carry the modality's logit scale. [..., E] → [..., E] unit rows."""

    def __init__(self, config: LogitScaleConfig):
        super().__init__()
        self.logit_scale = LogitScale(config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(x, dim=-1)
