"""A pre-LayerNorm transformer trunk using ``scaled_dot_product_attention``.

Token layout is batch-first ``[B, L, D]``. The fused ``qkv`` projection holds query, key and value weights in
that order (the layout of ``nn.MultiheadAttention.in_proj_weight``), so converted checkpoints map one to one.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from ..config import TransformerConfig


class DropPath(nn.Module):
    """Stochastic depth: drop the whole residual branch per sample with probability ``p`` while training."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep


class Attention(nn.Module):
    """Multi-head self-attention; optional learned bias key/value tokens (``bias_kv``)."""

    def __init__(self, width: int, heads: int, bias_kv: bool = False):
        super().__init__()
        if width % heads:
            raise ValueError(f"width {width} is not divisible by heads {heads}")
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        if bias_kv:
            self.bias_k = nn.Parameter(torch.zeros(1, 1, width))
            self.bias_v = nn.Parameter(torch.zeros(1, 1, width))
            nn.init.xavier_normal_(self.bias_k)
            nn.init.xavier_normal_(self.bias_v)
        else:
            self.bias_k = self.bias_v = None

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None, causal: bool = False,
                rows: torch.Tensor | None = None) -> torch.Tensor:
        """x: [B, L, D] → [B, L, D]; with ``rows`` ([B], one position per sample) only those positions' outputs,
        [B, 1, D]: their queries against all keys. ``mask`` is an additive or boolean mask broadcastable to
        [B, H, L, L']; with ``causal`` both hold (query i sees keys ≤ i that the mask lets through; the bias token,
        with ``bias_kv``, is visible to every query, as if it stood first)."""
        b, n, d = x.shape
        q, k, v = self._project(x, rows)
        if self.bias_k is not None:
            k = torch.cat([k, self.bias_k.expand(b, 1, d)], dim=1)
            v = torch.cat([v, self.bias_v.expand(b, 1, d)], dim=1)
            if mask is not None:
                mask = F.pad(mask, (0, 1), value=True if mask.dtype == torch.bool else 0.0)
        if causal and (mask is not None or self.bias_k is not None or rows is not None):
            mask, causal = _causal_with(mask, n, k.shape[1], x.device), False
        if rows is not None and mask is not None:
            mask = _mask_rows(mask, rows, b, n)
        q, k, v = (t.unflatten(-1, (self.heads, -1)).transpose(1, 2) for t in (q, k, v))
        if _matmul_attention_pays(q):
            out = _matmul_attention(q, k, v, mask, causal and mask is None)
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal and mask is None)
        return self.proj(out.transpose(1, 2).flatten(2))

    def _project(self, x: torch.Tensor, rows: torch.Tensor | None) -> tuple[torch.Tensor, ...]:
        """Queries, keys and values of x [B, L, D]: each [B, L, D], or with ``rows`` queries [B, 1, D] of those
        positions only (a plain ``nn.Linear`` projects just them; another layer, e.g. a packed or adapted copy,
        projects all and drops the rest)."""
        if rows is None:
            return self.qkv(x).chunk(3, dim=-1)
        d = x.shape[-1]
        picked = take_rows(x, rows)
        if type(self.qkv) is not nn.Linear:
            return self.qkv(picked)[..., :d], *self.qkv(x)[..., d:].chunk(2, dim=-1)
        weight, bias = self.qkv.weight, self.qkv.bias
        q = F.linear(picked, weight[:d], None if bias is None else bias[:d])
        return q, *F.linear(x, weight[d:], None if bias is None else bias[d:]).chunk(2, dim=-1)


def take_rows(x: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """One position per sample: x [B, L, ...], rows [B] → [B, 1, ...]."""
    return x[torch.arange(x.shape[0], device=x.device), rows].unsqueeze(1)


def _mask_rows(mask: torch.Tensor, rows: torch.Tensor, b: int, n: int) -> torch.Tensor:
    """The rows of a mask broadcastable to [B, H, n, L'] at one query position per sample (``rows`` [B]):
    [B, H or 1, 1, L']."""
    mask = mask.reshape((1,) * (4 - mask.ndim) + tuple(mask.shape))
    if mask.shape[-2] == 1:
        return mask
    mask = mask.expand(b, mask.shape[1], n, mask.shape[-1])
    return mask[torch.arange(b, device=rows.device), :, rows].unsqueeze(2)


MATMUL_ATTENTION_MAX_TOKENS = 512
"""Longest sequence the CPU low-precision training path scores with explicit matmuls (its [B, H, L, L'] scores
are kept for the backward pass; flash attention keeps none)."""


def _matmul_attention_pays(q: torch.Tensor) -> bool:
    """Whether to score attention with two matmuls and a softmax instead of ``scaled_dot_product_attention``:
    when training in bf16/fp16 on a CPU at up to :data:`MATMUL_ATTENTION_MAX_TOKENS` tokens. There the CPU flash
    kernel's backward is ~3× slower than the matmul formulation's (forward + backward, batch 8, 1 thread: 12
    heads × 197 tokens 72 → 24 ms; 8 heads × 77 causal 24 → 7 ms); in fp32, in inference and on GPUs it is not."""
    return (q.device.type == "cpu" and q.dtype in (torch.bfloat16, torch.float16) and q.requires_grad
            and torch.is_grad_enabled() and q.shape[-2] <= MATMUL_ATTENTION_MAX_TOKENS)


def _matmul_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None,
                      causal: bool) -> torch.Tensor:
    """softmax(q kᵀ / √d + mask) v, as ``scaled_dot_product_attention`` defines it. q [B, H, L, d], k and v
    [B, H, L', d] → [B, H, L, d]; ``mask`` boolean (True attends) or additive, broadcastable to [B, H, L, L']."""
    scores = (q * q.shape[-1] ** -0.5) @ k.transpose(-2, -1)
    if causal:
        mask = torch.ones(q.shape[-2], k.shape[-2], dtype=torch.bool, device=q.device).tril()
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf")) if mask.dtype == torch.bool else scores + mask
    return scores.softmax(dim=-1).to(v.dtype) @ v


def _causal_with(mask: torch.Tensor | None, n: int, keys: int, device: torch.device) -> torch.Tensor:
    """The causal rule over n queries and ``keys`` keys (query i sees keys ≤ i and every key past the n-th: the
    bias token), joined with ``mask`` (boolean: both must allow; additive: -inf where the rule forbids) → a mask
    broadcastable to [B, H, n, keys]."""
    allowed = torch.ones(n, keys, dtype=torch.bool, device=device).tril()
    allowed[:, n:] = True
    if mask is None:
        return allowed
    if mask.dtype == torch.bool:
        return mask & allowed
    return torch.where(allowed, mask, torch.tensor(float("-inf"), dtype=mask.dtype, device=device))


class Mlp(nn.Module):
    """fc2(GELU(fc1(x))). [..., D] → [..., D]. ``act`` is a module so that an inference copy can fuse the exact
    GELU into ``fc1`` (:class:`~omniembed.nn.packed_linear.PackedLinear`) and set ``act`` to identity."""

    def __init__(self, width: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(width, hidden)
        self.act: nn.Module = nn.GELU()
        self.fc2 = nn.Linear(hidden, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """x + DropPath(Attn(LN(x))); x + DropPath(MLP(LN(x)))."""

    def __init__(self, width: int, heads: int, mlp_ratio: float, drop_path: float, ln_eps: float, bias_kv: bool):
        super().__init__()
        self.norm1 = nn.LayerNorm(width, eps=ln_eps)
        self.attn = Attention(width, heads, bias_kv)
        self.norm2 = nn.LayerNorm(width, eps=ln_eps)
        self.mlp = Mlp(width, int(width * mlp_ratio))
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None, causal: bool = False,
                rows: torch.Tensor | None = None) -> torch.Tensor:
        """x [B, L, D] → [B, L, D], or with ``rows`` ([B] positions) the block's outputs there only: [B, 1, D]."""
        if rows is None:
            x = x + self.drop_path(self.attn(self.norm1(x), mask, causal))
        else:
            x = take_rows(x, rows) + self.drop_path(self.attn(self.norm1(x), mask, causal, rows))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class Transformer(nn.Module):
    """A stack of pre-LN blocks with linearly increasing drop-path. [B, L, D] → [B, L, D]."""

    def __init__(self, config: TransformerConfig):
        super().__init__()
        self.config = config
        self.pre_norm = nn.LayerNorm(config.width, eps=config.ln_eps) if config.pre_norm else nn.Identity()
        rates = [config.drop_path * i / max(config.depth - 1, 1) for i in range(config.depth)]  # no tensor: meta-safe
        self.blocks = nn.ModuleList(
            Block(config.width, config.heads, config.mlp_ratio, rate, config.ln_eps, config.bias_kv) for rate in rates
        )
        self.grad_checkpointing = config.grad_checkpointing

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute each block's activations in the backward pass (timm's method name, so one call reaches both)."""
        self.grad_checkpointing = enable

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None,
                rows: torch.Tensor | None = None) -> torch.Tensor:
        """x [B, L, D] → [B, L, D]; with ``rows`` ([B], one position per sample) the outputs at those positions
        only, [B, 1, D] — the last block computes nothing else (its keys and values still come from all tokens).
        The same values as the full outputs there, for a head that reads one token (CLS, EOS) and no other."""
        x = self.pre_norm(x)
        if rows is not None and not self.blocks:
            return take_rows(x, rows)
        for i, block in enumerate(self.blocks):
            picked = rows if i == len(self.blocks) - 1 else None
            if self.grad_checkpointing and self.training and torch.is_grad_enabled():
                x = checkpoint(block, x, mask, self.config.causal, picked, use_reentrant=False)
            else:
                x = block(x, mask, self.config.causal, picked)
        return x
