"""Depth modality: a depth (or disparity) map → normalised disparity ``[1, 224, 224]`` → ImageBind's depth encoder.

ImageBind released no depth preprocessing. It follows Omnivore, whose recipe is the default here: depth in
metres → disparity ``baseline · focal / depth`` (depth clipped to [min_depth, max_depth]) → clamped to
[0.01, disparity_max] and divided by ``disparity_max`` → resized (bilinear) and centre-cropped → (x − 0.0418) /
0.0295. Every constant is a config field, so other sensors and recipes need no code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from omniembed.config import LogitScaleConfig, TransformerConfig
from omniembed.errors import ConfigError
from omniembed.registry import register_modality

from .gray_image import GrayImageConfig, GrayImageModality
from .image import Interpolation

@dataclass
class DepthConfig(GrayImageConfig):
    """How stored values become the model's normalised disparity, and the depth encoder."""

    stored: Literal["depth", "disparity"] = "depth"
    """What the file holds: "depth" (distance) or "disparity" (already baseline · focal / depth)."""
    value_scale: float = 0.001
    """Integer-typed files (16-bit PNG, TIFF) are multiplied by this: 0.001 reads millimetres as metres.
    Float-typed inputs (.npy, float TIFF, arrays) are taken as they are."""
    focal_length: float = 518.857901
    """Pixels; the default is the NYU-v2 Kinect's fx."""
    baseline: float = 0.075
    """Metres; 0.075 for Kinect v1/v2, 0.095 for RealSense/Xtion."""
    min_depth: float = 0.01
    max_depth: float = 50.0
    disparity_max: float = 75.0
    """Disparity is clamped to [0.01, disparity_max] and divided by it (Omnivore's DepthNorm)."""
    interpolation: Interpolation = "bilinear"
    mean: float = 0.0418
    std: float = 0.0295
    trunk: TransformerConfig = field(default_factory=lambda: TransformerConfig(
        width=384, depth=12, heads=8, bias_kv=True, ln_eps=1e-6))
    logit_scale: LogitScaleConfig = field(default_factory=lambda: LogitScaleConfig(init=5.0, learnable=False))


@register_modality
class DepthModality(GrayImageModality):
    """Depth maps: 16-bit PNG/TIFF (millimetres by default), float .npy/TIFF (metres), or arrays.

    Depth files are PNGs like ordinary images, so a plain ``.png`` goes to the image modality: name depth files
    ``*.depth.png`` (the registry matches the longest compound suffix) or pass ``modality="depth"``.
    """

    name = "depth"
    config_cls = DepthConfig
    suffixes = (".depth.png", ".depth.tif", ".depth.tiff", ".depth.npy")
    config: DepthConfig

    def __init__(self, config: DepthConfig):
        super().__init__(config)
        for key in ("value_scale", "focal_length", "baseline", "min_depth", "max_depth", "disparity_max"):
            if getattr(config, key) <= 0:
                raise ConfigError(f"depth.{key} must be positive, got {getattr(config, key)}")
        if config.min_depth >= config.max_depth:
            raise ConfigError(f"depth.min_depth {config.min_depth} must be below max_depth {config.max_depth}")

    def to_values(self, array: np.ndarray) -> np.ndarray:
        """Stored values [H, W] → disparity / disparity_max in [0.01 / disparity_max, 1], float32 [H, W]."""
        cfg = self.config
        values = array.astype(np.float32)
        if array.dtype.kind in "ui":
            values *= np.float32(cfg.value_scale)
        if cfg.stored == "depth":
            # missing pixels (0) clip to min_depth and so saturate at disparity_max, as in Omnivore's recipe
            values = np.float32(cfg.baseline * cfg.focal_length) / np.clip(values, cfg.min_depth, cfg.max_depth)
        return np.clip(values, 0.01, cfg.disparity_max) / np.float32(cfg.disparity_max)

    @classmethod
    def tiny_config(cls) -> DepthConfig:
        return DepthConfig(image_size=32, patch_size=16,
                           trunk=TransformerConfig(width=32, depth=1, heads=4, bias_kv=True, ln_eps=1e-6))
