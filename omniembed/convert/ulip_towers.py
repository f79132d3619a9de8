"""The image and text towers inside a ULIP checkpoint, converted through OmniEmbed's open_clip / timm paths.

- **ULIP-2** (``ULIP2_WITH_OPENCLIP``) holds, when saved whole, open_clip's ``ViT-bigG-14``
  (``laion2b_s39b_b160k``) under ``open_clip_model.``: its keys are open_clip's own, so they become the
  ``image`` and ``text`` modalities' open_clip towers
  (:func:`~omniembed.modalities.open_clip_tower.open_clip_modalities`) by a prefix change.
- **ULIP-1** (``ULIP_WITH_IMAGE``) holds SLIP's CLIP ViT-B/16: the text tower (``transformer.``,
  ``token_embedding``, ``positional_embedding``, ``ln_final``, ``text_projection``) is OpenAI CLIP's layout
  with QuickGELU — open_clip's ``ViT-B-16`` text tower under the ``openai`` tag, key for key; the image tower is
  timm's ``vit_base_patch16_224`` (``visual.``) followed by ``image_projection`` (``x @ P``), i.e. the image
  modality's timm trunk and a bias-free projection, with SLIP's evaluation transform (resize 224 bilinear,
  centre crop, ImageNet mean/std).

With ``towers=False`` (or for the keys of a tower this module does not know) the keys are accounted for and
named as skipped, so nothing is dropped silently.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping

import torch

from ..config import HeadConfig, ModalityConfig
from ..nn.timm_trunk import TimmConfig
from ..registry import get_modality

if TYPE_CHECKING:
    from .ulip import UlipArch

OPEN_CLIP_PREFIX = "open_clip_model."
SLIP_TEXT = ("transformer.", "token_embedding.weight", "positional_embedding", "ln_final.", "text_projection")
SLIP_IMAGE = ("visual.", "image_projection")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DEFAULT_CLIP = {"ulip2": ("ViT-bigG-14", "laion2b_s39b_b160k"), "ulip1": ("ViT-B-16", "openai")}
"""Which open_clip model each ULIP generation's towers are: ULIP-2 builds ``ViT-bigG-14`` with that tag; ULIP-1's
SLIP text tower is CLIP ViT-B/16's text shape with QuickGELU (the ``openai`` tag switches it on)."""


@dataclass
class TowerPlan:
    """The towers of one checkpoint: their modality configs, the checkpoint keys they account for, and how those
    keys map onto the OmniEmbed model (``renames``; ``transposed`` keys are multiplied on the right in ULIP)."""

    configs: dict[str, ModalityConfig] = field(default_factory=dict)
    keys: set[str] = field(default_factory=set)
    renames: dict[str, str] = field(default_factory=dict)
    transposed: set[str] = field(default_factory=set)
    converted: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def mapped(self, state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """OmniEmbed key → tensor for every converted tower key."""
        return {new: state[old].T if old in self.transposed else state[old] for old, new in self.renames.items()}


def plan_towers(state: Mapping[str, torch.Tensor], arch: "UlipArch", convert: bool) -> TowerPlan:
    """Find the towers in ``state`` (``module.`` already stripped) and plan their conversion."""
    plan = TowerPlan()
    open_clip_keys = sorted(k for k in state if k.startswith(OPEN_CLIP_PREFIX))
    text_keys = sorted(k for k in state if k.startswith(SLIP_TEXT))
    image_keys = sorted(k for k in state if k.startswith(SLIP_IMAGE))
    plan.keys = set(open_clip_keys) | set(text_keys) | set(image_keys)
    if open_clip_keys:
        _open_clip_towers(plan, open_clip_keys, arch, convert)
    if text_keys:
        _slip_text(plan, text_keys, arch, convert, "logit_scale" in state)
    if image_keys:
        _slip_image(plan, image_keys, arch, convert)
    return plan


def _clip(arch: "UlipArch", generation: str) -> tuple[str, str | None]:
    if arch.clip_arch is not None:
        return arch.clip_arch, arch.clip_pretrained
    name, tag = DEFAULT_CLIP[generation]
    return name, arch.clip_pretrained or tag


def _open_clip_towers(plan: TowerPlan, keys: list[str], arch: "UlipArch", convert: bool) -> None:
    label = f"image + text (open_clip_model.*, {len(keys)} tensors)"
    if not convert:
        plan.skipped.append(label)
        return
    from ..modalities.open_clip_tower import open_clip_modalities

    name, tag = _clip(arch, "ulip2")
    plan.configs.update(open_clip_modalities(name, pretrained=tag))
    for key in keys:
        rest = key[len(OPEN_CLIP_PREFIX):]
        plan.renames[key] = (f"encoders.image.trunk.tower.{rest}" if rest.startswith("visual.")
                             else f"encoders.text.trunk.tower.clip.{rest}")
    plan.converted.append(f"{label} → image, text: open_clip {name}" + (f" ({tag})" if tag else ""))


def _slip_text(plan: TowerPlan, keys: list[str], arch: "UlipArch", convert: bool, has_scale: bool) -> None:
    label = f"text (SLIP CLIP text tower, {len(keys)} tensors)"
    if not convert:
        plan.skipped.append(label)
        return
    from ..modalities.open_clip_tower import open_clip_modalities

    name, tag = _clip(arch, "ulip1")
    plan.configs["text"] = open_clip_modalities(name, pretrained=tag)["text"]
    plan.renames.update({k: f"encoders.text.trunk.tower.clip.{k}" for k in keys})
    if has_scale:  # ULIP's one logit scale; the open_clip model carries its own copy
        plan.renames["logit_scale"] = "encoders.text.trunk.tower.clip.logit_scale"
    plan.converted.append(f"{label} → text: open_clip {name}" + (f" ({tag})" if tag else ""))


def _slip_image(plan: TowerPlan, keys: list[str], arch: "UlipArch", convert: bool) -> None:
    label = f"image (SLIP ViT + image_projection, {len(keys)} tensors)"
    if not convert:
        plan.skipped.append(label)
        return
    cls = get_modality("image").config_cls
    kwargs: dict[str, Any] = dict(arch.vision_kwargs)
    plan.configs["image"] = cls(image_size=int(kwargs.get("img_size", 224)), interpolation="bilinear",
                                mean=IMAGENET_MEAN, std=IMAGENET_STD,
                                tower=TimmConfig(name=arch.vision_model, frozen=True, kwargs=kwargs),
                                head=HeadConfig(pool="cls", norm=False, bias=False))
    for key in keys:
        plan.renames[key] = ("encoders.image.head.head.proj.weight" if key == "image_projection"
                             else f"encoders.image.trunk.model.{key[len('visual.'):]}")
    plan.transposed.add("image_projection")
    plan.converted.append(f"{label} → image: timm {arch.vision_model}")
