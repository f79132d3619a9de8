"""One modality's learned path: stem → trunk → head → postprocess, with multi-clip folding."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from .nn.heads import Postprocess
from .registry import Batch


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


class ModalityEncoder(nn.Module):
    """stem(batch) → Tokens → trunk → Tokens → head → [N, E] → postprocess (unit rows).

    ``clip_ndim`` is the number of dims of one clip without the batch dim (e.g. 3 for an audio clip
    [1, 128, 204]). A tensor batch with ``clip_ndim + 2`` dims is read as [B, K, ...] (K clips per input):
    clips are folded into the batch, embedded, normalised and averaged — the embedding of an input is the
    renormalised mean of its clips' unit vectors.
    """

    def __init__(self, stem: nn.Module, trunk: nn.Module, head: nn.Module, postprocess: Postprocess,
                 clip_ndim: int | None = None):
        super().__init__()
        self.stem = stem
        self.trunk = trunk
        self.head = head
        self.postprocess = postprocess
        self.clip_ndim = clip_ndim

    def features(self, batch: Batch) -> torch.Tensor:
        """Head outputs before normalisation: [B, K, E] (K = 1 for single-clip inputs)."""
        if isinstance(batch, torch.Tensor) and self.clip_ndim is not None and batch.ndim == self.clip_ndim + 2:
            b, k = batch.shape[:2]
            return self.head(self.trunk(self.stem(batch.flatten(0, 1)))).unflatten(0, (b, k))
        return self.head(self.trunk(self.stem(batch))).unsqueeze(1)

    def clip_embeddings(self, batch: Batch) -> torch.Tensor:
        """Unit vectors per clip: [B, K, E]."""
        return self.postprocess(self.features(batch))

    def forward(self, batch: Batch) -> torch.Tensor:
        """Unit embeddings [B, E]."""
        return F.normalize(self.clip_embeddings(batch).mean(dim=1), dim=-1)

    @property
    def logit_scale(self) -> torch.Tensor:
        return self.postprocess.logit_scale()

    def scale_parameters(self) -> list[nn.Parameter]:
        """The logit scale's own parameters (empty when it is fixed)."""
        return list(self.postprocess.parameters())


def to_device(batch: Batch, device: torch.device, dtype: torch.dtype | None = None) -> Batch:
    """Move a tensor or a dict of tensors; floating tensors are cast to ``dtype`` when given."""
    def move(t: torch.Tensor) -> torch.Tensor:
        if dtype is not None and t.is_floating_point():
            return t.to(device=device, dtype=dtype, non_blocking=True)
        return t.to(device=device, non_blocking=True)

    if isinstance(batch, Mapping):
        return {k: move(v) for k, v in batch.items()}
    return move(batch)
