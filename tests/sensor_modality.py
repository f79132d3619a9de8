"""A sensor series (``*.sensor.csv``: one line per time step, one comma-separated value per channel) as an omniembed
modality: the out-of-tree modality that the registry and plug-in tests build.

test_registry registers it in-process; test_plugins copies this file's text into a plug-in distribution that only its
subprocesses see. So it imports nothing but omniembed and its dependencies, and registers nothing on import.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from omniembed.config import ModalityConfig, TransformerConfig
from omniembed.encoder import ModalityEncoder
from omniembed.errors import InputError, UnreadableInputError
from omniembed.nn.heads import Postprocess, TokenHead
from omniembed.nn.tokens import PoolingHead, Tokens, TransformerTrunk
from omniembed.nn.transformer import Transformer
from omniembed.registry import Modality


@dataclass
class SensorConfig(ModalityConfig):
    channels: int = 1
    samples: int = 32
    window: int = 8
    trunk: TransformerConfig = field(default_factory=lambda: TransformerConfig(width=16, depth=1, heads=2))


class WindowStem(nn.Module):
    """[B, samples, channels] → samples / window tokens of window · channels values, linearly embedded, after a CLS
    token: [B, 1 + samples / window, D]."""

    def __init__(self, cfg: SensorConfig):
        super().__init__()
        self.window = cfg.window
        self.proj = nn.Linear(cfg.window * cfg.channels, cfg.trunk.width)
        self.cls = nn.Parameter(torch.zeros(1, 1, cfg.trunk.width))

    def forward(self, x: torch.Tensor) -> Tokens:
        tokens = self.proj(x.unflatten(1, (-1, self.window)).flatten(2))
        return Tokens(torch.cat([self.cls.expand(len(x), -1, -1), tokens], 1))


class SensorModality(Modality):
    name = "sensor"
    config_cls = SensorConfig
    suffixes = (".sensor.csv",)

    def load(self, path: Path) -> np.ndarray:
        """The file's values, [samples, channels] (a one-channel file holds one value per line)."""
        try:
            return np.loadtxt(path, delimiter=",", ndmin=2)
        except ValueError as exc:
            raise UnreadableInputError(str(path), f"not a CSV of numbers ({exc})") from exc

    def preprocess(self, raw: np.ndarray) -> torch.Tensor:
        series = torch.as_tensor(np.asarray(raw, dtype=np.float32))
        expected = (self.config.samples, self.config.channels)
        if series.shape != expected:
            raise InputError(f"<{tuple(series.shape)}>", f"expected {expected[0]} samples of {expected[1]} channels")
        return series

    def build_encoder(self, embed_dim: int) -> ModalityEncoder:
        cfg = self.config
        return ModalityEncoder(WindowStem(cfg), TransformerTrunk(Transformer(cfg.trunk)),
                               PoolingHead(TokenHead(cfg.head, cfg.trunk.width, embed_dim)),
                               Postprocess(cfg.logit_scale))

    @classmethod
    def tiny_config(cls) -> SensorConfig:
        return SensorConfig()
