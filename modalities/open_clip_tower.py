"""A frozen open_clip model as the image and/or text encoder, so new modalities train against a real CLIP space.

``image: {open_clip: {arch: "ViT-B-32", weights: "clip.safetensors"}}`` (and the same under ``text``) builds
``open_clip.create_model(arch)`` offline, loads the local weight file (safetensors, or a torch file read with
``weights_only=True``), and keeps only the tower each modality needs: the image encoder returns exactly
``model.encode_image(x)``, the text encoder ``model.encode_text(ids)`` (then L2-normalised, as open_clip's
``normalize=True``). Parameters never require grad and the towers stay in eval mode.

Preprocessing stays the modality's own and is checked against the tower: image size and resize mode against
the architecture; mean/std/interpolation against open_clip's table for the ``pretrained`` tag when one is
given (a local file alone does not say which statistics it was trained with); context length and tokenizer
against the text config. A mismatch is a :class:`ConfigError` naming the right values, and
:func:`open_clip_modalities` writes a consistent pair of configs. Users reach all of this through
``omniembed.load("open_clip:ARCH/TAG", add=[...])`` (:mod:`omniembed.pretrained.open_clip`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from dataclasses import dataclass
from typing import Any, ClassVar, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from omniembed.config import ModalityConfig
from omniembed.encoder import ModalityEncoder
from omniembed.errors import CheckpointError, ConfigError
from omniembed.nn.heads import Postprocess
from omniembed.nn.tokens import Tokens
from omniembed.weights import load_weight_file

KINDS = ("image", "text")
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass
class OpenClipConfig:
    """An open_clip architecture and a local checkpoint holding the whole CLIP model's state dict."""

    TAG: ClassVar[str] = "open_clip"

    arch: str = "ViT-B-32"
    """An ``open_clip.list_models()`` name."""
    weights: str | None = None
    """Local .safetensors / .bin / .pt file. None: random init (how a saved OmniEmbed checkpoint rebuilds the
    tower before loading its weights from model.safetensors)."""
    pretrained: str | None = None
    """The open_clip pretrained tag the weights come from (e.g. "laion2b_s34b_b79k", "openai"), read offline
    from open_clip's table: its preprocessing is checked and QuickGELU switched on where the tag needs it."""
    frozen: bool = True


def architecture(arch: str) -> dict[str, Any]:
    """open_clip's model config for ``arch`` (ConfigError listing close names when unknown)."""
    import open_clip

    cfg = open_clip.get_model_config(arch)
    if cfg is None:
        close = [n for n in open_clip.list_models() if arch.lower().split("-")[0] in n.lower()][:8]
        raise ConfigError(f"open_clip has no architecture '{arch}'{f' (similar: {close})' if close else ''}")
    return cfg


def pretrained_preprocessing(config: OpenClipConfig) -> dict[str, Any]:
    """open_clip's table entry for ``config.pretrained`` ({} without a tag); ConfigError for an unknown tag."""
    import open_clip

    if config.pretrained is None:
        return {}
    entry = open_clip.get_pretrained_cfg(config.arch, config.pretrained)
    if not entry:
        tags = open_clip.list_pretrained_tags_by_model(config.arch)
        raise ConfigError(f"open_clip has no pretrained tag '{config.pretrained}' for '{config.arch}' (tags: {tags})")
    return entry


def create_clip(config: OpenClipConfig) -> nn.Module:
    """``open_clip.create_model(arch)`` without touching the network, then the local weights loaded strictly."""
    import open_clip

    architecture(config.arch)
    quick_gelu = bool(pretrained_preprocessing(config).get("quick_gelu", False))
    with _quiet_open_clip():
        model = open_clip.create_model(config.arch, pretrained=None, device="cpu", force_quick_gelu=quick_gelu)
    if config.weights:
        state = load_weight_file(config.weights)
        if state and all(k.startswith("module.") for k in state):
            state = {k[len("module."):]: v for k, v in state.items()}
        own = model.state_dict()
        missing = sorted(set(own) - set(state))
        unexpected = sorted(set(state) - set(own))
        mis_shaped = [f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}" for k, v in own.items()
                      if k in state and state[k].shape != v.shape]
        if missing or unexpected or mis_shaped:
            raise CheckpointError(f"{config.weights}: does not fit open_clip '{config.arch}' (missing {missing[:5]}, "
                                  f"unexpected {unexpected[:5]}, shape mismatch {mis_shaped[:3]})")
        model.load_state_dict(state, strict=True)
    return model.eval()


class OpenClipImageTower(nn.Module):
    """``model.visual``: images [B, 3, H, W] (preprocessed) → features [B, E], exactly ``encode_image(x)``."""

    def __init__(self, clip: nn.Module):
        super().__init__()
        self.visual = clip.visual

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.visual(images)


class OpenClipTextTower(nn.Module):
    """The CLIP model without its image tower: ids [B, L ≤ context] → ``encode_text`` features [B, E].

    OmniEmbed's text batches drop trailing all-padding columns; open_clip adds its position table over the whole
    context, so the ids are zero-padded back to ``context_length`` first.
    """

    def __init__(self, clip: nn.Module, context_length: int):
        super().__init__()
        clip.visual = nn.Identity()
        self.clip = clip
        self.context_length = context_length

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        if ids.shape[1] < self.context_length:
            ids = F.pad(ids, (0, self.context_length - ids.shape[1]))
        return self.clip.encode_text(ids)


class TowerTrunk(nn.Module):
    """A frozen tower as an encoder trunk: Tokens(input) → Tokens(features [B, 1, E]); always in eval mode."""

    def __init__(self, tower: nn.Module, frozen: bool):
        super().__init__()
        self.tower = tower
        self.frozen = frozen
        if frozen:
            self.tower.requires_grad_(False)
        self.tower.eval()

    def forward(self, x: Tokens) -> Tokens:
        return Tokens(self.tower(x.tokens).unsqueeze(1))

    def train(self, mode: bool = True) -> TowerTrunk:
        super().train(mode)
        if self.frozen:
            self.tower.eval()
        return self


class InputStem(nn.Module):
    """The preprocessed batch as it is: images [B, 3, H, W] or token ids [B, L] → Tokens."""

    def forward(self, x: torch.Tensor) -> Tokens:
        return Tokens(x)


class FeatureHead(nn.Module):
    """Tokens(features [B, 1, E]) → [B, E]."""

    def forward(self, x: Tokens) -> torch.Tensor:
        return x.tokens[:, 0]


def build_open_clip_encoder(kind: str, config: ModalityConfig, embed_dim: int) -> ModalityEncoder:
    """The image or text encoder of ``config.tower`` (an :class:`OpenClipConfig`); ``config``'s preprocessing is
    checked against the architecture before the model is built, so a mismatch costs no construction."""
    if kind not in KINDS:
        raise ConfigError(f"open_clip towers are 'image' or 'text', not '{kind}'")
    tower_cfg: OpenClipConfig = config.tower
    arch = architecture(tower_cfg.arch)
    if int(arch["embed_dim"]) != embed_dim:
        raise ConfigError(f"open_clip '{tower_cfg.arch}' embeds into {arch['embed_dim']} dims but the model's "
                          f"embed_dim is {embed_dim}: set embed_dim to {arch['embed_dim']}")
    if kind == "image":
        _check_image_preprocessing(config, arch, pretrained_preprocessing(tower_cfg), tower_cfg.arch)
        tower: nn.Module = OpenClipImageTower(create_clip(tower_cfg))
    else:
        context = _check_text_preprocessing(config, arch, tower_cfg.arch)
        tower = OpenClipTextTower(create_clip(tower_cfg), context)
    return ModalityEncoder(InputStem(), TowerTrunk(tower, tower_cfg.frozen), FeatureHead(),
                           Postprocess(config.logit_scale))


def without_weight_file(config: ModalityConfig) -> ModalityConfig:
    """The config to store in a checkpoint: the tower's weights live in model.safetensors, not in a side file."""
    if not isinstance(getattr(config, "tower", None), OpenClipConfig) or config.tower.weights is None:
        return config
    return dataclasses.replace(config, tower=dataclasses.replace(config.tower, weights=None))


def open_clip_modalities(arch: str, weights: str | None = None, pretrained: str | None = None,
                         frozen: bool = True) -> dict[str, ModalityConfig]:
    """``{"image": ImageConfig, "text": TextConfig}`` whose towers and preprocessing are ``arch``'s (and the
    ``pretrained`` tag's mean/std/interpolation when given)."""
    from omniembed.registry import get_modality

    tower = OpenClipConfig(arch=arch, weights=weights, pretrained=pretrained, frozen=frozen)
    cfg = architecture(arch)
    pre = {"mean": CLIP_MEAN, "std": CLIP_STD, "interpolation": "bicubic", **pretrained_preprocessing(tower)}
    if pre.get("resize_mode", "shortest") != "shortest":
        raise ConfigError(f"open_clip '{arch}' ({pretrained}) resizes with mode '{pre['resize_mode']}'; the image "
                          f"modality resizes the short side and centre-crops")
    image_cls, text_cls = get_modality("image").config_cls, get_modality("text").config_cls
    image = image_cls(image_size=_square(cfg["vision_cfg"].get("image_size", 224), arch),
                      interpolation=pre["interpolation"], mean=tuple(pre["mean"]), std=tuple(pre["std"]),
                      tower=tower)
    text = text_cls(tokenizer="clip_bpe", context_length=int(cfg["text_cfg"].get("context_length", 77)),
                    tower=tower)
    return {"image": image, "text": text}


# ---- checks -------------------------------------------------------------------------------------------------------
def _check_image_preprocessing(config: Any, arch_cfg: dict[str, Any], tag: dict[str, Any], arch: str) -> None:
    """Image size against the architecture; resize mode, mean/std and interpolation against the pretrained tag."""
    want: dict[str, Any] = {"image_size": _square(arch_cfg["vision_cfg"].get("image_size", 224), arch)}
    if tag.get("resize_mode", "shortest") != "shortest":
        raise ConfigError(f"open_clip '{arch}' with this pretrained tag resizes with mode '{tag['resize_mode']}'; the "
                          f"image modality resizes the short side and centre-crops")
    if tag:
        want.update({"interpolation": tag.get("interpolation", "bicubic"),
                     "mean": tuple(float(v) for v in tag.get("mean", CLIP_MEAN)),
                     "std": tuple(float(v) for v in tag.get("std", CLIP_STD))})
    have = {"image_size": config.image_size, "interpolation": config.interpolation,
            "mean": tuple(float(v) for v in config.mean), "std": tuple(float(v) for v in config.std)}
    wrong = {k: v for k, v in want.items() if have[k] != v}
    if config.resize_size not in (None, config.image_size):
        wrong["resize_size"] = None
    if wrong:
        raise ConfigError(f"image preprocessing does not match open_clip '{arch}': set "
                          + ", ".join(f"image.{k} = {v!r}" for k, v in wrong.items()))


def _check_text_preprocessing(config: Any, arch: dict[str, Any], name: str) -> int:
    text_cfg = arch.get("text_cfg", {})
    if text_cfg.get("hf_tokenizer_name") or text_cfg.get("tokenizer_kwargs"):
        raise ConfigError(f"open_clip '{name}' tokenizes with {text_cfg.get('hf_tokenizer_name') or 'custom options'}; "
                          f"only CLIP-BPE text towers are supported (use it as the image tower only)")
    context = int(text_cfg.get("context_length", 77))
    if config.tokenizer != "clip_bpe" or config.context_length != context:
        raise ConfigError(f"text preprocessing does not match open_clip '{name}': set text.tokenizer = 'clip_bpe' "
                          f"and text.context_length = {context}")
    return context


def _square(size: Any, arch: str) -> int:
    h, w = (size, size) if isinstance(size, int) else tuple(size)
    if h != w:
        raise ConfigError(f"open_clip '{arch}' takes {h}×{w} images; the image modality crops squares")
    return int(h)


@contextlib.contextmanager
def _quiet_open_clip() -> Iterator[None]:
    """open_clip logs a warning on every random init; building a tower to fill from a file is not news."""
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(previous)
