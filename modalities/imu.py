"""IMU modality: a 6-channel accelerometer + gyroscope series ``[6, 2000]`` → ImageBind's IMU encoder.

The series is cut into windows of 8 samples; each window's 6 × 8 values (channel-major) are one token:
Linear(48, D) without bias → LayerNorm → CLS token → + learned positions → pre-LN transformer with learned
bias key/value tokens → LayerNorm → CLS → Dropout(0.5) → Linear(D, E). ImageBind's data are Ego4D's IMU
streams (accelerometer xyz, gyroscope xyz); values are used as they are, without normalisation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from omniembed.config import HeadConfig, LogitScaleConfig, ModalityConfig, TransformerConfig
from omniembed.encoder import ModalityEncoder
from omniembed.errors import ConfigError, InputError, UnreadableInputError
from omniembed.nn.heads import Postprocess, TokenHead
from omniembed.nn.tokens import PoolingHead, Tokens, TransformerTrunk
from omniembed.nn.transformer import Transformer
from omniembed.registry import Modality, register_modality

@dataclass
class ImuConfig(ModalityConfig):
    """Series layout (samples, channels), how a series is fitted to ``num_samples``, and the IMU encoder."""

    channels: int = 6
    num_samples: int = 2000
    window: int = 8
    """Samples per token; ``num_samples`` must be a multiple."""
    crop: Literal["center", "start"] = "center"
    """A longer series keeps its "center" or "start" ``num_samples``; a shorter one is zero-padded at the end."""
    csv_columns: tuple[int, ...] | None = None
    """Columns of a CSV that hold the channels (0-based). None: a CSV of exactly ``channels`` columns, or of
    ``channels + 1`` whose first column (a timestamp) is dropped."""
    stem_norm_eps: float = 1e-5
    head_dropout: float = 0.5
    trunk: TransformerConfig = field(default_factory=lambda: TransformerConfig(
        width=512, depth=6, heads=8, bias_kv=True, ln_eps=1e-6, drop_path=0.7))
    head: HeadConfig = field(default_factory=lambda: HeadConfig(pool="cls", norm_eps=1e-6))
    logit_scale: LogitScaleConfig = field(default_factory=lambda: LogitScaleConfig(init=5.0, learnable=False))


class ImuWindowStem(nn.Module):
    """``[B, C, T]`` → windows of ``w`` samples → Linear(C · w, D) → LayerNorm → CLS → + positions.

    Output Tokens ``[B, 1 + T / w, D]``. A window's values are ordered channel-major (c · w + t), as ImageBind
    unfolds them.
    """

    def __init__(self, channels: int, window: int, num_samples: int, width: int, norm_eps: float = 1e-5):
        super().__init__()
        self.window = window
        self.proj = nn.Linear(channels * window, width, bias=False)
        self.norm = nn.LayerNorm(width, eps=norm_eps)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, width))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + num_samples // window, width))
        nn.init.normal_(self.cls_token, std=width ** -0.5)
        nn.init.normal_(self.pos_embed, std=0.01)

    def forward(self, x: torch.Tensor) -> Tokens:
        windows = x.unfold(-1, self.window, self.window).transpose(1, 2).flatten(2)  # [B, T / w, C · w]
        tokens = self.norm(self.proj(windows))
        cls = self.cls_token.expand(tokens.shape[0], -1, -1)
        return Tokens(torch.cat([cls, tokens], dim=1) + self.pos_embed)


class DropoutTokenHead(TokenHead):
    """LayerNorm → pool → Dropout → Linear: ImageBind's IMU head (dropout between pooling and projection)."""

    def __init__(self, config: HeadConfig, width: int, embed_dim: int, dropout: float):
        super().__init__(config, width, embed_dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, tokens: torch.Tensor, ids: torch.Tensor | None = None,
                at: torch.Tensor | None = None) -> torch.Tensor:
        return self.proj(self.dropout(self.read(tokens, ids, at)))


@register_modality
class ImuModality(Modality):
    """IMU series from ``.npy`` ([6, N] or [N, 6]) or ``.csv`` (one row per sample), or arrays.

    Routed by a compound suffix (``*.imu.npy`` / ``*.imu.csv``: ``.npy`` and ``.csv`` alone say nothing about
    what a file holds) or with ``modality="imu"``.
    """

    name = "imu"
    config_cls = ImuConfig
    suffixes = (".imu.npy", ".imu.csv")
    config: ImuConfig

    def __init__(self, config: ImuConfig):
        super().__init__(config)
        if config.window <= 0 or config.num_samples % config.window:
            raise ConfigError(f"imu.num_samples {config.num_samples} is not a multiple of imu.window "
                              f"{config.window}")
        if not 0.0 <= config.head_dropout < 1.0:
            raise ConfigError(f"imu.head_dropout must be in [0, 1), got {config.head_dropout}")

    def load(self, path: Path) -> np.ndarray:
        """``.npy`` as stored; ``.csv`` as [N, columns] (a header line is skipped) → the channel columns."""
        try:
            if path.suffix.lower() == ".npy":
                return np.load(path, allow_pickle=False)
            table = _read_csv(path)
        except (OSError, ValueError) as exc:
            raise UnreadableInputError(str(path), f"cannot read IMU series ({exc})") from exc
        return self._csv_channels(table, str(path))

    def preprocess(self, raw: Any) -> torch.Tensor:
        """An array/tensor [C, N] or [N, C] → float ``[C, num_samples]`` (cropped or zero-padded at the end)."""
        source = _describe(raw)
        try:
            array = raw.detach().cpu().numpy() if isinstance(raw, torch.Tensor) else np.asarray(raw)
        except (TypeError, ValueError) as exc:
            raise InputError(source, f"not an IMU series ({exc})") from exc
        cfg = self.config
        if array.ndim != 2 or cfg.channels not in array.shape:
            raise InputError(source, f"expected an IMU series [{cfg.channels}, N] or [N, {cfg.channels}], "
                                     f"got shape {tuple(array.shape)}")
        if array.dtype.kind not in "uif":
            raise InputError(source, f"IMU series has non-numeric dtype {array.dtype}")
        series = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
        if series.shape[0] != cfg.channels:
            series = series.T
        if series.shape[1] == 0:
            raise InputError(source, "IMU series is empty")
        if not torch.isfinite(series).all():
            raise InputError(source, "IMU series contains NaN or Inf values")
        n = series.shape[1]
        if n > cfg.num_samples:
            start = (n - cfg.num_samples) // 2 if cfg.crop == "center" else 0
            return series[:, start:start + cfg.num_samples].contiguous()
        return torch.nn.functional.pad(series, (0, cfg.num_samples - n))

    def build_encoder(self, embed_dim: int) -> ModalityEncoder:
        cfg = self.config
        stem = ImuWindowStem(cfg.channels, cfg.window, cfg.num_samples, cfg.trunk.width, cfg.stem_norm_eps)
        head = DropoutTokenHead(cfg.head, cfg.trunk.width, embed_dim, cfg.head_dropout)
        return ModalityEncoder(stem, TransformerTrunk(Transformer(cfg.trunk)), PoolingHead(head),
                               Postprocess(cfg.logit_scale))

    @classmethod
    def tiny_config(cls) -> ImuConfig:
        return ImuConfig(num_samples=256, trunk=TransformerConfig(width=32, depth=1, heads=4, bias_kv=True,
                                                                  ln_eps=1e-6))

    def _csv_channels(self, table: np.ndarray, source: str) -> np.ndarray:
        cfg = self.config
        columns = table.shape[1]
        if cfg.csv_columns is not None:
            if max(cfg.csv_columns) >= columns:
                raise InputError(source, f"imu.csv_columns {list(cfg.csv_columns)} name a column beyond the "
                                         f"file's {columns}")
            return table[:, list(cfg.csv_columns)]
        if columns == cfg.channels:
            return table
        if columns == cfg.channels + 1:
            return table[:, 1:]
        raise InputError(source, f"CSV has {columns} columns; expected {cfg.channels} (or a timestamp + "
                                 f"{cfg.channels}); set imu.csv_columns to pick them")


def _read_csv(path: Path) -> np.ndarray:
    """[N, columns] float64; a first line that is not numbers is a header and is skipped."""
    with open(path, encoding="utf-8") as f:
        first = f.readline()
    try:
        [float(v) for v in first.split(",") if v.strip()]
        skip = 0
    except ValueError:
        skip = 1
    table = np.loadtxt(path, delimiter=",", skiprows=skip, ndmin=2, dtype=np.float64)
    if table.size == 0:
        raise ValueError("no rows")
    return table


def _describe(raw: Any) -> str:
    shape = getattr(raw, "shape", None)
    return f"<{type(raw).__name__}{' ' + str(tuple(shape)) if shape is not None else ''}>"
