"""A timm backbone as an encoder trunk (images, or spectrograms with ``in_chans=1``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from ..errors import ConfigError
from ..weights import load_weight_file
from .tokens import Tokens


@dataclass
class TimmConfig:
    """A timm backbone as the trunk: ``timm.create_model(name, pretrained=False)`` + an optional local weight file."""

    TAG: ClassVar[str] = "timm"

    name: str = "resnet18"
    weights: str | None = None
    frozen: bool = False
    kwargs: dict[str, Any] = field(default_factory=dict)
    """Extra ``timm.create_model`` arguments, e.g. ``{"channels": [16, 32, 64, 128], "drop_rate": 0.1}``."""
    channels_last: bool = False
    """Run the backbone in channels-last memory format (weights and inputs), as oneDNN and cuDNN's tensor-core
    convolutions prefer: ``resnet10t`` on 128 images of 32 px, 2 CPU threads, forward 83 → 46 ms, forward and
    backward (64 images) 164 → 143 ms. Outputs differ from timm's own layout by float rounding (~1e-6), which is
    why it is off unless asked for (converted checkpoints match their source to that precision); a ViT gains
    little, only its patch embedding being a convolution."""


class TimmTrunk(nn.Module):
    """Tokens(inputs [B, in_chans, H, W]) → Tokens(pooled features [B, 1, F]); ``width`` is F."""

    def __init__(self, config: TimmConfig, in_chans: int = 3):
        super().__init__()
        import timm

        try:
            self.model = timm.create_model(config.name, pretrained=False, num_classes=0, in_chans=in_chans,
                                           **config.kwargs)
        except (RuntimeError, TypeError) as exc:
            raise ConfigError(f"timm has no model '{config.name}' ({exc})") from exc
        if config.weights:
            state = load_weight_file(config.weights)
            missing, unexpected = self.model.load_state_dict(state, strict=False)
            unexpected = [k for k in unexpected if not k.startswith(("fc.", "head.", "classifier."))]
            if missing or unexpected:
                raise ConfigError(f"{config.weights}: does not fit timm '{config.name}' "
                                  f"(missing {missing[:5]}, unexpected {unexpected[:5]})")
        if config.frozen:
            self.model.requires_grad_(False)
        self.memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
        self.model.to(memory_format=self.memory_format)
        self.width = self.model.num_features

    def forward(self, x: Tokens) -> Tokens:
        return Tokens(self.model(x.tokens.contiguous(memory_format=self.memory_format)).unsqueeze(1))


class IdentityStem(nn.Module):
    """The stem of a timm trunk: the backbone takes the preprocessed tensor [B, C, H, W] as it is."""

    def forward(self, x: torch.Tensor) -> Tokens:
        return Tokens(x)
