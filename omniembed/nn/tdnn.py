"""A time-delay network trunk: 1-D convolutions along time over filterbank frames (x-vector style).

The mel bins are the input channels and only the time axis is convolved, so a pattern is learned once for every
moment of an utterance but not shifted along frequency — the opposite trade of a 2-D CNN or a patch ViT, and the
one that suits small speech datasets. On the Free Spoken Digit Dataset, trained on four speakers and tested on
the other two, a supervised probe of this trunk (width 128) reaches 87–91 % top-1 (three seeds, 400 steps) where a
2-layer patch ViT of similar cost tops out at 58–63 % and a 2-D CNN at 55 %.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal

import torch
from torch import nn

from ..config import check_choices
from ..errors import ConfigError
from .tokens import Tokens


@dataclass
class TdnnConfig:
    """Layer ``i``: Conv1d(kernel ``kernels[i]``, dilation ``dilations[i]``, "same" padding, no bias) → BatchNorm →
    ReLU, all ``width`` channels wide; then statistics pooling (mean and max over time).

    ``pool``: ``"all"`` pools over every frame, padding included, so the share of padding — how short the clip
    is — is part of the embedding; ``"valid"`` pools over the frames that are not padding, i.e. not zero in every
    mel bin (the padding value of per-clip normalised features, ``AudioConfig.feature_norm: clip``; a SpecAugment
    time mask, also zero, is left out of the pool as well), which makes the embedding blind to how much silence was
    trimmed or padded: recordings from another source are cut differently."""

    TAG: ClassVar[str] = "tdnn"

    width: int = 128
    kernels: list[int] = field(default_factory=lambda: [5, 3, 3])
    dilations: list[int] = field(default_factory=lambda: [1, 2, 3])
    bn_eps: float = 1e-5
    pool: Literal["all", "valid"] = "all"

    def validate(self, where: str) -> None:
        """Raise :class:`ConfigError` (naming ``where``) for an empty, mismatched or non-positive layout, or a
        ``pool`` that is not one of its choices."""
        if self.width <= 0:
            raise ConfigError(f"{where}.width must be positive, got {self.width}")
        if not self.kernels or len(self.kernels) != len(self.dilations):
            raise ConfigError(f"{where}: kernels {self.kernels} and dilations {self.dilations} must be non-empty "
                              "lists of the same length")
        if any(k <= 0 or k % 2 == 0 for k in self.kernels):
            raise ConfigError(f"{where}.kernels must be odd and positive (for 'same' padding), got {self.kernels}")
        if any(d <= 0 for d in self.dilations):
            raise ConfigError(f"{where}.dilations must be positive, got {self.dilations}")
        check_choices(self, where)


class TdnnTrunk(nn.Module):
    """Tokens(filterbanks ``[B, 1, n_mels, T]``) → Tokens(``[B, 1, 2 · width]``): mean ‖ max over time of the
    last layer. ``width`` is the pooled feature size, as :class:`~.timm_trunk.TimmTrunk` reports it."""

    def __init__(self, config: TdnnConfig, n_mels: int):
        super().__init__()
        config.validate("tdnn")
        layers: list[nn.Module] = []
        channels = n_mels
        for kernel, dilation in zip(config.kernels, config.dilations):
            layers += [nn.Conv1d(channels, config.width, kernel, padding=dilation * (kernel - 1) // 2,
                                 dilation=dilation, bias=False),
                       nn.BatchNorm1d(config.width, eps=config.bn_eps), nn.ReLU()]
            channels = config.width
        self.layers = nn.Sequential(*layers)
        self.width = 2 * config.width
        self.pool_valid = config.pool == "valid"

    def forward(self, x: Tokens) -> Tokens:
        bins = x.tokens.flatten(1, 2)  # [B, 1, M, T] → [B, M, T]
        frames = self.layers(bins)  # [B, width, T], ≥ 0 after the ReLU
        if not self.pool_valid:
            return Tokens(torch.cat([frames.mean(dim=-1), frames.amax(dim=-1)], dim=-1).unsqueeze(1))
        valid = bins.ne(0).any(dim=1, keepdim=True)  # [B, 1, T]
        valid |= ~valid.any(dim=-1, keepdim=True)  # a clip that is all padding pools every frame
        kept = frames * valid  # the ReLU's outputs are ≥ 0, so a zeroed frame never wins the max
        mean = kept.sum(dim=-1) / valid.sum(dim=-1)
        return Tokens(torch.cat([mean, kept.amax(dim=-1)], dim=-1).unsqueeze(1))
