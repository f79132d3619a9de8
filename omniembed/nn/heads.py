"""Heads (tokens → one vector in the shared space) and the postprocessor (L2-normalise + logit scale)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..config import HeadConfig, LogitScaleConfig


def _pool_cls(tokens: torch.Tensor, ids: torch.Tensor | None) -> torch.Tensor:
    return tokens[:, 0]


def _pool_eos(tokens: torch.Tensor, ids: torch.Tensor | None) -> torch.Tensor:
    if ids is None:
        raise ValueError("EOS pooling needs the token ids")
    return tokens[torch.arange(tokens.shape[0], device=tokens.device), ids.argmax(dim=-1)]


def _pool_mean(tokens: torch.Tensor, ids: torch.Tensor | None) -> torch.Tensor:
    return tokens[:, 1:].mean(dim=1)


def _pool_cls_max(tokens: torch.Tensor, ids: torch.Tensor | None) -> torch.Tensor:
    return torch.cat([tokens[:, 0], tokens[:, 1:].amax(dim=1)], dim=-1)


POOLS = {"cls": (_pool_cls, 1), "eos": (_pool_eos, 1), "mean": (_pool_mean, 1), "cls_max": (_pool_cls_max, 2)}
"""pool name → (function, output width as a multiple of the token width)."""


class TokenHead(nn.Module):
    """LayerNorm → pool → Linear to the shared dim. tokens [B, L, D] (+ ids [B, L]) → [B, E]."""

    def __init__(self, config: HeadConfig, width: int, embed_dim: int):
        super().__init__()
        if config.pool not in POOLS:
            raise ValueError(f"unknown head pool '{config.pool}' (choose from {', '.join(POOLS)})")
        self.pool, mult = POOLS[config.pool]
        self.norm = nn.LayerNorm(width, eps=config.norm_eps) if config.norm else nn.Identity()
        self.proj = nn.Linear(width * mult, embed_dim, bias=config.bias)

    def forward(self, tokens: torch.Tensor, ids: torch.Tensor | None = None) -> torch.Tensor:
        return self.proj(self.pool(self.norm(tokens), ids))


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
