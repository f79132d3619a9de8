"""Image modality: decode → resize/centre-crop/normalise → patch stem (or a timm backbone) → head.

This module is the worked example of a modality: a config dataclass, a :class:`Modality` subclass registered
by name, and its encoder builder.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torchvision.io import ImageReadMode, decode_image, read_file
from torchvision.transforms import v2

from omniembed.config import FieldError, HeadConfig, ModalityConfig, TransformerConfig, check_positive
from omniembed.encoder import ModalityEncoder
from omniembed.errors import InputError, UnreadableInputError
from omniembed.nn.heads import Postprocess, TokenHead
from omniembed.nn.patch import PatchStem
from omniembed.nn.timm_trunk import IdentityStem, TimmConfig, TimmTrunk
from omniembed.nn.tokens import PoolingHead, TransformerTrunk
from omniembed.nn.transformer import Transformer
from omniembed.registry import Modality, register_modality

from .open_clip_tower import OpenClipConfig, build_open_clip_encoder, without_weight_file
from .pixel_limit import check_image_file, check_pixels, quiet_pil

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
TORCHVISION_SUFFIXES = (".jpg", ".jpeg", ".png", ".gif", ".webp")
TORCHVISION_DECODES = (".jpg", ".jpeg", ".png", ".webp")
PIL_SUFFIXES = (".bmp", ".tif", ".tiff", ".ppm", ".pgm", ".pbm", ".tga", ".ico")
Interpolation = Literal["bicubic", "bilinear", "nearest"]
INTERPOLATIONS = {
    "bicubic": v2.InterpolationMode.BICUBIC,
    "bilinear": v2.InterpolationMode.BILINEAR,
    "nearest": v2.InterpolationMode.NEAREST,
}


@dataclass
class ImageConfig(ModalityConfig):
    """Preprocessing (sizes in pixels) and the encoder of the image modality."""

    image_size: int = 224
    resize_size: int | None = None
    """Short side after resizing, before the centre crop; ``None`` means ``image_size``."""
    interpolation: Interpolation = "bicubic"
    mean: tuple[float, ...] = CLIP_MEAN
    std: tuple[float, ...] = CLIP_STD
    patch_size: int = 16
    temporal_kernel: int = 1
    """> 1 makes the stem a Conv3d (t, p, p) shared with video; images are repeated to t frames."""
    patch_bias: bool = False
    tower: TimmConfig | OpenClipConfig | None = None
    """Another encoder instead of the patch stem and transformer: ``{kind: timm, name: ...}`` (a timm backbone as
    the trunk) or ``{kind: open_clip, arch: ...}`` (a frozen open_clip image tower as the whole encoder,
    ``modalities/open_clip_tower.py``). Configs written with ``timm:`` / ``open_clip:`` keys read as these."""
    trunk: TransformerConfig = field(default_factory=lambda: TransformerConfig(width=768, depth=12, heads=12, pre_norm=True))
    head: HeadConfig = field(default_factory=lambda: HeadConfig(pool="cls"))

    def __post_init__(self) -> None:
        check_positive(self, "image_size", "resize_size", "patch_size", "temporal_kernel")
        if self.tower is None and self.patch_size > self.image_size:
            raise FieldError("patch_size", f"({self.patch_size}) is larger than image_size ({self.image_size})")
        if not all(s > 0 for s in self.std):
            raise FieldError("std", f"must be positive, got {list(self.std)}")


@register_modality
class ImageModality(Modality):
    name = "image"
    config_cls = ImageConfig
    suffixes = TORCHVISION_SUFFIXES + PIL_SUFFIXES
    config: ImageConfig

    def __init__(self, config: ImageConfig):
        super().__init__(config)
        self.transform = v2.Compose([
            v2.Resize(config.resize_size or config.image_size, interpolation=INTERPOLATIONS[config.interpolation],
                      antialias=True),
            v2.CenterCrop(config.image_size),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(mean=list(config.mean), std=list(config.std)),
        ])

    def load(self, path: Path) -> torch.Tensor:
        """Decode to uint8 [3, H, W]: torchvision for jpeg/png/webp, PIL for the rest (a gif's first frame: torchvision
        would decode every frame). The header's size is checked against the pixel limit before decoding."""
        check_image_file(path, "cannot decode image")
        try:
            if path.suffix.lower() in TORCHVISION_DECODES:
                return decode_image(read_file(str(path)), mode=ImageReadMode.RGB)
            with quiet_pil(), Image.open(path) as im:
                return v2.functional.pil_to_tensor(im.convert("RGB"))
        except (RuntimeError, OSError, UnidentifiedImageError, ValueError) as exc:
            raise UnreadableInputError(str(path), f"cannot decode image ({exc})") from exc

    def accepts(self, item: Any) -> bool:
        return isinstance(item, Image.Image)

    def thumbnail(self, path: Path, size: int = 96) -> np.ndarray:
        image = v2.functional.resize(self.load(path), size, antialias=True)
        return v2.functional.center_crop(image, size).permute(1, 2, 0).numpy()

    def preprocess(self, raw: Any) -> torch.Tensor:
        """PIL image, uint8 [3, H, W] / [H, W, 3] or float [3, H, W] in [0, 1] → float [3, S, S]."""
        image = _as_chw(raw)
        if image.is_floating_point() and not torch.isfinite(image).all():
            raise InputError(_describe(raw), "image contains NaN or Inf values")
        return self.transform(image)

    def build_encoder(self, embed_dim: int) -> ModalityEncoder:
        cfg = self.config
        if isinstance(cfg.tower, OpenClipConfig):
            return build_open_clip_encoder("image", cfg, embed_dim)
        if isinstance(cfg.tower, TimmConfig):
            trunk = TimmTrunk(cfg.tower)
            head = TokenHead(HeadConfig(pool="cls", norm=False, bias=cfg.head.bias), trunk.width, embed_dim)
            return ModalityEncoder(IdentityStem(), trunk, PoolingHead(head), Postprocess(cfg.logit_scale))
        stem = PatchStem(3, cfg.trunk.width, cfg.patch_size, cfg.image_size, cfg.temporal_kernel, bias=cfg.patch_bias)
        return ModalityEncoder(stem, TransformerTrunk(Transformer(cfg.trunk)),
                               PoolingHead(TokenHead(cfg.head, cfg.trunk.width, embed_dim)),
                               Postprocess(cfg.logit_scale))

    def export_assets(self, directory: Path) -> ImageConfig:
        return without_weight_file(self.config)

    @classmethod
    def tiny_config(cls) -> ImageConfig:
        return ImageConfig(image_size=64, patch_size=16,
                           trunk=TransformerConfig(width=64, depth=2, heads=4, pre_norm=True))


def _as_chw(raw: Any) -> torch.Tensor:
    if isinstance(raw, Image.Image):  # opened by the caller, perhaps not yet decoded: check its size first
        check_pixels(_describe(raw), *raw.size)
        with quiet_pil():
            return v2.functional.pil_to_tensor(raw.convert("RGB"))
    if isinstance(raw, np.ndarray):
        raw = torch.from_numpy(np.require(raw, requirements=["C", "W"]))
        if raw.ndim == 3 and raw.shape[-1] in (1, 3, 4) and raw.shape[0] not in (1, 3, 4):
            raw = raw.permute(2, 0, 1)
    if not isinstance(raw, torch.Tensor):
        raise InputError(_describe(raw), "not an image (expected a path, PIL image, array or tensor)")
    if raw.ndim == 2:
        raw = raw.unsqueeze(0)
    if raw.ndim != 3 or raw.shape[0] not in (1, 3, 4):
        raise InputError(_describe(raw), f"image array must be [3, H, W] or [H, W, 3], got shape {tuple(raw.shape)}")
    if raw.shape[-1] == 0 or raw.shape[-2] == 0:
        raise InputError(_describe(raw), f"image is empty (shape {tuple(raw.shape)})")
    if raw.shape[0] == 1:
        raw = raw.expand(3, -1, -1)
    return raw[:3]


def _describe(raw: Any) -> str:
    shape = getattr(raw, "shape", None)
    return f"<{type(raw).__name__}{' ' + str(tuple(shape)) if shape is not None else ''}>"
