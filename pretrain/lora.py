"""Low-rank adapters (LoRA, Hu et al. 2021) for the ``nn.Linear`` layers of a frozen tower.

``add_lora(module, rank, alpha)`` swaps every ``nn.Linear`` inside ``module`` for a :class:`LoRALinear` whose base
weight is frozen and whose update ``(alpha / rank) · B A`` starts at zero (B zero-init), so the model's outputs are
unchanged at step 0. ``merge_lora_state`` folds the adapters back into plain ``weight`` tensors so a trained model
saves as an ordinary OmniEmbed checkpoint.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

LORA_KEYS = ("lora_a", "lora_b")


class LoRALinear(nn.Module):
    """y = base(x) + (alpha / rank) · x Aᵀ Bᵀ.  A [rank, in] (Kaiming-uniform init), B [out, rank] (zeros)."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float):
        super().__init__()
        if rank <= 0:
            raise ValueError(f"LoRA rank must be positive, got {rank}")
        self.base = base
        self.base.requires_grad_(False)
        self.scale = alpha / rank
        self.lora_a = nn.Parameter(torch.empty(rank, base.in_features, device=base.weight.device))
        self.lora_b = nn.Parameter(torch.zeros(base.out_features, rank, device=base.weight.device))
        nn.init.kaiming_uniform_(self.lora_a, a=math.sqrt(5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + F.linear(F.linear(x, self.lora_a), self.lora_b) * self.scale

    def merged_weight(self) -> torch.Tensor:
        return self.base.weight + self.scale * (self.lora_b @ self.lora_a)


def add_lora(module: nn.Module, rank: int, alpha: float) -> list[str]:
    """Wrap every ``nn.Linear`` under ``module`` in place; returns the wrapped layers' names."""
    targets = [(name, child) for name, child in module.named_modules() if isinstance(child, nn.Linear)]
    for name, linear in targets:
        parent_name, _, attr = name.rpartition(".")
        parent = module.get_submodule(parent_name) if parent_name else module
        setattr(parent, attr, LoRALinear(linear, rank, alpha))
    return [name for name, _ in targets]


def merge_lora_state(state: dict[str, torch.Tensor], scale: float) -> dict[str, torch.Tensor]:
    """A state dict with LoRA layers (``x.base.weight``, ``x.lora_a``, ``x.lora_b``) → plain ``x.weight``/``x.bias``."""
    merged: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key.endswith(".lora_a") or key.endswith(".lora_b"):
            continue
        if ".base." in key and key.rsplit(".base.", 1)[0] + ".lora_a" in state:
            prefix, leaf = key.rsplit(".base.", 1)
            if leaf == "weight":
                a, b = state[prefix + ".lora_a"].float(), state[prefix + ".lora_b"].float()
                value = (value.float() + scale * (b @ a)).to(value.dtype)
            merged[f"{prefix}.{leaf}"] = value
        else:
            merged[key] = value
    return merged
