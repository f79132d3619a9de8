"""The encoder contract every modality meets (:class:`Encoder`), and the usual way to meet it
(:class:`ModalityEncoder`: stem → trunk → head → postprocess, with multi-clip folding).

The model, the embedding API and the trainer talk to an encoder only through :class:`Encoder`; a modality whose
encoder is not a stem/trunk/head pipeline (video fuses other modalities' encoders) subclasses it directly.
"""

from __future__ import annotations

import abc
from typing import ClassVar, Mapping, Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import nn

from .errors import ConfigError
from .nn.heads import Postprocess
from .nn.tokens import PoolingHead, Tokens

Batch = torch.Tensor | Mapping[str, torch.Tensor]
"""What an encoder takes: one tensor, or named tensors for inputs of several parts (text ids and mask, video)."""


@runtime_checkable
class GradCheckpointing(Protocol):
    """A layer that can recompute its activations in the backward pass (timm's and open_clip's convention, which
    :class:`~omniembed.nn.transformer.Transformer` follows)."""

    def set_grad_checkpointing(self, enable: bool = True) -> None: ...


class Encoder(nn.Module, metaclass=abc.ABCMeta):
    """What every modality's encoder is: a batch from its modality's ``collate`` → unit embeddings ``[B, E]``.

    Subclasses implement :meth:`features` and :attr:`logit_scale`; the rest has defaults that fit an encoder with
    one path and weights of its own.
    """

    part_names: ClassVar[tuple[str, ...]] = ()
    """The embeddings :meth:`parts` gives (a composite encoder's fused one and its components); () when the encoder
    has one path, and ``embed(..., parts=True)`` refuses it."""

    @abc.abstractmethod
    def features(self, batch: Batch) -> torch.Tensor:
        """Head outputs before normalisation: ``[B, K, E]`` (K clips per input; 1 for single-clip inputs)."""

    @property
    @abc.abstractmethod
    def logit_scale(self) -> torch.Tensor:
        """The scale (inverse temperature) this modality's pairs multiply cosine similarities by: a 0-dim tensor."""

    def clip_embeddings(self, batch: Batch) -> torch.Tensor:
        """Unit vectors per clip: ``[B, K, E]``."""
        return F.normalize(self.features(batch), dim=-1)

    def forward(self, batch: Batch) -> torch.Tensor:
        """Unit embeddings ``[B, E]``: the renormalised mean of the input's clip embeddings."""
        return F.normalize(self.clip_embeddings(batch).mean(dim=1), dim=-1)

    def parts(self, batch: Batch) -> dict[str, torch.Tensor]:
        """``{name: unit rows [B, E]}`` for each of :attr:`part_names`."""
        raise ConfigError(f"the {type(self).__name__} has no parts; embed it with parts=False")

    def scale_parameters(self) -> list[nn.Parameter]:
        """The logit scale's own parameters (empty when it is fixed or borrowed)."""
        return []

    def lora_targets(self) -> list[nn.Module]:
        """The sub-modules whose ``nn.Linear`` layers low-rank adapters may adapt when this encoder is a frozen
        anchor (its trunk, typically); empty when it owns no weights."""
        return []

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute activations in the backward pass in every layer of this encoder that can."""
        for module in self.modules():
            if module is not self and isinstance(module, GradCheckpointing):
                module.set_grad_checkpointing(enable)


class ModalityEncoder(Encoder):
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
            return self._encode(batch.flatten(0, 1)).unflatten(0, (b, k))
        return self._encode(batch).unsqueeze(1)

    def _encode(self, batch: Batch) -> torch.Tensor:
        """stem → trunk → head: [N, E]. A pooling head that reads one token per sample marks it on the stem's
        tokens first, so that a trunk that can skip the rest in its last layer does."""
        x = self.stem(batch)
        if isinstance(self.head, PoolingHead) and isinstance(x, Tokens):
            x = self.head.mark(x)
        return self.head(self.trunk(x))

    def clip_embeddings(self, batch: Batch) -> torch.Tensor:
        """Unit vectors per clip: [B, K, E]."""
        return self.postprocess(self.features(batch))

    @property
    def logit_scale(self) -> torch.Tensor:
        return self.postprocess.logit_scale()

    def scale_parameters(self) -> list[nn.Parameter]:
        """The logit scale's own parameters (empty when it is fixed)."""
        return list(self.postprocess.parameters())

    def lora_targets(self) -> list[nn.Module]:
        """The trunk: the adapters go where the bulk of the weights is, leaving stem and head as they are."""
        return [self.trunk]


def to_device(batch: Batch, device: torch.device, dtype: torch.dtype | None = None) -> Batch:
    """Move a tensor or a dict of tensors; floating tensors are cast to ``dtype`` when given."""
    def move(t: torch.Tensor) -> torch.Tensor:
        if dtype is not None and t.is_floating_point():
            return t.to(device=device, dtype=dtype, non_blocking=True)
        return t.to(device=device, non_blocking=True)

    if isinstance(batch, Mapping):
        return {k: move(v) for k, v in batch.items()}
    return move(batch)
