"""Thermal modality: an infrared image → intensity in [0, 1] ``[1, 224, 224]`` → ImageBind's thermal encoder.

ImageBind trained on LLVIP's 8-bit infrared frames and released no thermal preprocessing; the default reads the
image as luminance scaled to [0, 1] (16-bit radiometric files by 1/65535, or stretched to their own min..max
with ``scaling="minmax"``), resizes the short side (bicubic), centre-crops, and applies no mean/std. Users'
reports on ImageBind's tracker find LLVIP accuracy closest to the paper without a mean/std normalisation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from omniembed.config import LogitScaleConfig, TransformerConfig
from omniembed.registry import register_modality

from .gray_image import GrayImageConfig, GrayImageModality

@dataclass
class ThermalConfig(GrayImageConfig):
    """How stored intensities become [0, 1] inputs, and the thermal encoder."""

    scaling: Literal["dtype", "minmax"] = "dtype"
    """"dtype": divide integers by their type's maximum (255, 65535), floats taken as already in [0, 1];
    "minmax": stretch each image's own min..max to [0, 1] (radiometric 16-bit frames use a narrow band)."""
    trunk: TransformerConfig = field(default_factory=lambda: TransformerConfig(
        width=768, depth=12, heads=12, bias_kv=True, ln_eps=1e-6))
    logit_scale: LogitScaleConfig = field(default_factory=lambda: LogitScaleConfig(init=10.0, learnable=False))


@register_modality
class ThermalModality(GrayImageModality):
    """Thermal images: 8/16-bit PNG/TIFF/JPEG (colour files are read as luminance), .npy, or arrays.

    Routed by a compound suffix (``*.thermal.png``; a plain ``.png`` is an image) or with ``modality="thermal"``.
    """

    name = "thermal"
    config_cls = ThermalConfig
    suffixes = (".thermal.png", ".thermal.jpg", ".thermal.jpeg", ".thermal.tif", ".thermal.tiff", ".thermal.npy")
    config: ThermalConfig

    def __init__(self, config: ThermalConfig):
        super().__init__(config)

    def to_values(self, array: np.ndarray) -> np.ndarray:
        """Stored intensities [H, W] → float32 [H, W] in [0, 1]."""
        values = array.astype(np.float32)
        if self.config.scaling == "minmax":
            low, high = float(values.min()), float(values.max())
            return (values - low) / (high - low) if high > low else np.zeros_like(values)
        if array.dtype.kind in "ui":
            return values / np.float32(np.iinfo(array.dtype).max)
        return values

    @classmethod
    def tiny_config(cls) -> ThermalConfig:
        return ThermalConfig(image_size=32, patch_size=16,
                             trunk=TransformerConfig(width=32, depth=1, heads=4, bias_kv=True, ln_eps=1e-6))
