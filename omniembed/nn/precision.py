"""Low-precision inference without autocast's per-call weight casts: weights cast once, kept, reused.

Autocast casts every linear and conv weight from fp32 to bf16/fp16 on every call — for a ViT-B that is 86 M
values read and written per forward, whatever the batch — and keeps the residual stream in fp32, so each block
casts its layer-norm outputs down again and its adds, layer norms and GELU move fp32 activations.
:func:`cast_for_inference` makes the casts once: a copy of a module in which

* every transformer :class:`~omniembed.nn.transformer.Block` is wholly in the low dtype (its residual stream
  too: the layer-norm and softmax kernels still accumulate their statistics in fp32), its input cast on entry;
  on a CPU its four linears hold oneDNN-packed weights with bias and GELU fused in the matmul
  (:class:`~omniembed.nn.packed_linear.PackedLinear`);
* every other ``nn.Linear`` / conv holds its weight and bias in the low dtype (autocast's own cast, made once);
* everything else — stems' positional embeddings and tokens, heads' norms, point-cloud geometry — is the
  original's own tensor, shared, not copied, and runs as autocast runs it.

The copy runs under autocast (which leaves tensors already in its dtype alone). :class:`CastCache` keeps one such
copy per key and rebuilds it when the original's weights change (an optimiser step, ``load_weights``, ``.to``).
"""

from __future__ import annotations

import copy
from functools import partial
from typing import Any, Hashable

import torch
from torch import nn

from .packed_linear import PackedLinear, packing_available
from .transformer import Block

MATMUL_MODULES = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
"""Modules whose weights autocast casts to the low dtype (linear and convolution are on its lower-precision list)."""


def cast_for_inference(module: nn.Module, dtype: torch.dtype) -> nn.Module:
    """A copy of ``module`` with its transformer blocks in ``dtype`` and its other linear/conv weights in
    ``dtype``; all other parameters and buffers are the original's own tensors. Run it under autocast."""
    memo: dict[int, Any] = {}
    for sub in module.modules():
        if isinstance(sub, Block):
            tensors = list(sub.parameters()) + list(sub.buffers())
        elif isinstance(sub, MATMUL_MODULES):
            tensors = list(sub.parameters(recurse=False))
        else:
            continue
        for t in tensors:
            if t.is_floating_point() and id(t) not in memo:
                memo[id(t)] = (nn.Parameter(t.detach().to(dtype), requires_grad=False)
                               if isinstance(t, nn.Parameter) else t.detach().to(dtype))
    for t in list(module.parameters()) + list(module.buffers()):
        memo.setdefault(id(t), t)
    cast = copy.deepcopy(module, memo)
    for sub in cast.modules():
        if isinstance(sub, Block):
            sub.register_forward_pre_hook(partial(_stream_to, dtype))
            _pack_linears(sub, dtype)
    return cast.eval()


def _pack_linears(block: Block, dtype: torch.dtype) -> None:
    """On a CPU, the block's four linears with oneDNN-packed weights, GELU fused into ``fc1`` (a layer that is not
    a plain ``nn.Linear`` — a LoRA wrapper — stays as it is, and so does the GELU after it)."""
    if not packing_available(block.norm1.weight.device, dtype):
        return
    for owner, name in ((block.attn, "qkv"), (block.attn, "proj"), (block.mlp, "fc2")):
        if type(getattr(owner, name)) is nn.Linear:
            setattr(owner, name, PackedLinear(getattr(owner, name)))
    if type(block.mlp.fc1) is nn.Linear and type(block.mlp.act) is nn.GELU and block.mlp.act.approximate == "none":
        block.mlp.fc1 = PackedLinear(block.mlp.fc1, activation="gelu")
        block.mlp.act = nn.Identity()


def _stream_to(dtype: torch.dtype, block: nn.Module, args: tuple) -> tuple:
    """A block's residual stream (its first argument, [B, L, D]) enters in the block's dtype."""
    return (args[0].to(dtype),) + args[1:]


def weights_fingerprint(module: nn.Module) -> tuple:
    """What identifies the current values of ``module``'s parameters without reading them: storage, in-place
    version, device and dtype of each (an optimiser step, ``copy_`` or ``.to`` changes one of these)."""
    return tuple((p.data_ptr(), p._version, p.device, p.dtype) for p in module.parameters())


class CastCache:
    """One :func:`cast_for_inference` copy per key (e.g. modality and dtype), rebuilt when the original changes."""

    def __init__(self) -> None:
        self._copies: dict[Hashable, tuple[tuple, nn.Module]] = {}

    def get(self, key: Hashable, module: nn.Module, dtype: torch.dtype) -> nn.Module:
        """The low-precision copy of ``module`` for ``key``, made now if there is none or ``module`` changed."""
        fingerprint = weights_fingerprint(module)
        held = self._copies.get(key)
        if held is None or held[0] != fingerprint:
            held = (fingerprint, cast_for_inference(module, dtype))
            self._copies[key] = held
        return held[1]
