"""Single-channel images (depth, thermal): reading 8/16-bit files, resize + centre crop, the normed patch stem.

ImageBind embeds depth and thermal maps with the same encoder shape: a bias-free Conv2d patch embedding
(kernel = stride = 16) over a ``[B, 1, 224, 224]`` map, a LayerNorm over the patch tokens, a CLS token and
learned positions, then a pre-LN transformer with learned bias key/value tokens. :class:`GrayImageModality`
holds what the two share; ``depth.py`` and ``thermal.py`` add how their raw values become model inputs.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import nn
from torchvision.transforms import v2

from omniembed.config import HeadConfig, ModalityConfig, TransformerConfig
from omniembed.encoder import ModalityEncoder
from omniembed.errors import ConfigError, InputError, UnreadableInputError
from omniembed.nn.heads import Postprocess, TokenHead
from omniembed.nn.tokens import PoolingHead, Tokens, TransformerTrunk
from omniembed.nn.transformer import Transformer
from omniembed.registry import Modality

from .image import INTERPOLATIONS, Interpolation
from .pixel_limit import check_image_file, check_pixels, quiet_pil

@dataclass
class GrayImageConfig(ModalityConfig):
    """Preprocessing (sizes in pixels) and encoder of a single-channel image modality."""

    image_size: int = 224
    resize_size: int | None = None
    """Short side after resizing, before the centre crop; ``None`` means ``image_size``."""
    interpolation: Interpolation = "bicubic"
    mean: float = 0.0
    std: float = 1.0
    patch_size: int = 16
    stem_norm_eps: float = 1e-5
    """LayerNorm over the patch tokens (ImageBind: PyTorch's default 1e-5)."""
    trunk: TransformerConfig = field(default_factory=lambda: TransformerConfig(
        width=768, depth=12, heads=12, bias_kv=True, ln_eps=1e-6))
    head: HeadConfig = field(default_factory=lambda: HeadConfig(pool="cls", norm_eps=1e-6))


class NormedPatchStem(nn.Module):
    """Conv patch embedding → LayerNorm over patch tokens → CLS token → + learned positions.

    ``[B, C, H, W]`` → Tokens ``[B, 1 + (H / p) · (W / p), D]``. The CLS token is not normalised (ImageBind's
    order: the norm belongs to the patch embedding, CLS and positions come after).
    """

    def __init__(self, in_chans: int, width: int, patch_size: int, image_size: int, norm_eps: float = 1e-5):
        super().__init__()
        self.proj = nn.Conv2d(in_chans, width, patch_size, stride=patch_size, bias=False)
        self.norm = nn.LayerNorm(width, eps=norm_eps)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, width))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + (image_size // patch_size) ** 2, width))
        nn.init.normal_(self.cls_token, std=0.02)
        nn.init.normal_(self.pos_embed, std=0.02)

    def forward(self, x: torch.Tensor) -> Tokens:
        patches = self.norm(self.proj(x).flatten(2).transpose(1, 2))  # [B, N, D]
        cls = self.cls_token.expand(patches.shape[0], -1, -1)
        return Tokens(torch.cat([cls, patches], dim=1) + self.pos_embed)


class GrayImageModality(Modality):
    """Shared loading, resizing and encoder of single-channel image modalities.

    Subclasses implement :meth:`to_values`: a 2-D array as read from a file or given by the user → float32
    ``[H, W]`` model values before resizing (e.g. depth in millimetres → disparity).
    """

    config: GrayImageConfig

    def __init__(self, config: GrayImageConfig):
        super().__init__(config)
        if config.std <= 0:
            raise ConfigError(f"{self.name}.std must be positive, got {config.std}")
        self.resize = v2.Compose([
            v2.Resize(config.resize_size or config.image_size, interpolation=INTERPOLATIONS[config.interpolation],
                      antialias=True),
            v2.CenterCrop(config.image_size),
        ])

    # ---- raw values --------------------------------------------------------------------------------------
    def load(self, path: Path) -> np.ndarray:
        """A 2-D array of the file's stored values: uint8/uint16/int32/float32 from PNG/TIFF/JPEG, any from .npy."""
        if path.suffix.lower() != ".npy":
            check_image_file(path, f"cannot read {self.name} map")  # outside the try: it raises InputErrors
        try:
            if path.suffix.lower() == ".npy":
                array = np.load(path, allow_pickle=False)
            else:
                with quiet_pil(), Image.open(path) as im:
                    array = _pil_values(im)
        except (OSError, ValueError, UnidentifiedImageError) as exc:
            raise UnreadableInputError(str(path), f"cannot read {self.name} map ({exc})") from exc
        return _as_2d(array, str(path))

    @abc.abstractmethod
    def to_values(self, array: np.ndarray) -> np.ndarray:
        """Stored values [H, W] → float32 model values [H, W] (before resizing and mean/std)."""

    def preprocess(self, raw: Any) -> torch.Tensor:
        """A 2-D array / tensor / PIL image of stored values → float ``[1, S, S]``."""
        source = _describe(raw)
        if isinstance(raw, Image.Image):
            check_pixels(source, *raw.size)
            with quiet_pil():
                raw = _pil_values(raw)
        if isinstance(raw, torch.Tensor):
            raw = raw.detach().cpu().numpy()
        if not isinstance(raw, np.ndarray):
            raise InputError(source, f"not a {self.name} map (expected a path, PIL image, array or tensor)")
        array = _as_2d(raw, source)
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            raise InputError(source, f"{self.name} map contains NaN or Inf values")
        values = torch.from_numpy(np.ascontiguousarray(self.to_values(array), dtype=np.float32)).unsqueeze(0)
        cfg = self.config
        return (self.resize(values) - cfg.mean) / cfg.std

    # ---- encoder -------------------------------------------------------------------------------------------
    def build_encoder(self, embed_dim: int) -> ModalityEncoder:
        cfg = self.config
        if cfg.image_size % cfg.patch_size:
            raise ConfigError(f"{self.name}.image_size {cfg.image_size} is not a multiple of patch_size "
                              f"{cfg.patch_size}")
        stem = NormedPatchStem(1, cfg.trunk.width, cfg.patch_size, cfg.image_size, cfg.stem_norm_eps)
        return ModalityEncoder(stem, TransformerTrunk(Transformer(cfg.trunk)),
                               PoolingHead(TokenHead(cfg.head, cfg.trunk.width, embed_dim)),
                               Postprocess(cfg.logit_scale))


def _pil_values(im: Image.Image) -> np.ndarray:
    """The stored values of a PIL image: 16-bit modes keep 16 bits; colour images become luminance (L)."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        return np.asarray(im, dtype=np.uint16)
    if im.mode in ("L", "I", "F"):
        return np.asarray(im)
    return np.asarray(im.convert("L"))


def _as_2d(array: np.ndarray, source: str) -> np.ndarray:
    """[H, W], [1, H, W] or [H, W, 1] → [H, W]; anything else is an InputError naming ``source``."""
    if array.ndim == 3 and 1 in (array.shape[0], array.shape[-1]):
        array = array.reshape(array.shape[1:] if array.shape[0] == 1 else array.shape[:-1])
    if array.ndim != 2:
        raise InputError(source, f"expected a single-channel map [H, W], got shape {tuple(array.shape)}")
    if 0 in array.shape:
        raise InputError(source, f"map is empty (shape {tuple(array.shape)})")
    if array.dtype.kind not in "uif":
        raise InputError(source, f"map has non-numeric dtype {array.dtype}")
    return array


def _describe(raw: Any) -> str:
    shape = getattr(raw, "shape", None)
    if shape is None and isinstance(raw, Image.Image):
        shape = raw.size
    return f"<{type(raw).__name__}{' ' + str(tuple(shape)) if shape is not None else ''}>"
