"""ImageBind state dict → OmniEmbed model: configs built from the inferred architecture, keys renamed one to one.

ImageBind's parts map onto OmniEmbed's encoders without any arithmetic on the weights:

=====================================================  =========================================================
ImageBind                                              OmniEmbed (``encoders.<modality>.``)
=====================================================  =========================================================
``modality_preprocessors.<m>`` conv / linear, norm     ``stem.proj``, ``stem.norm``
``… cls_token``, ``… pos_embed``                       ``stem.cls_token``, ``stem.pos_embed``
``modality_trunks.<m>.blocks.<i>.attn.in_proj_*``      ``trunk.transformer.blocks.<i>.attn.qkv.*`` (q, k, v rows)
``… attn.out_proj``, ``bias_k``, ``bias_v``            ``… attn.proj``, ``attn.bias_k``, ``attn.bias_v``
``… norm_1``, ``norm_2``, ``mlp.fc1``, ``mlp.fc2``     ``… norm1``, ``norm2``, ``mlp.fc1``, ``mlp.fc2``
``modality_heads.<m>`` LayerNorm, Linear               ``head.head.norm``, ``head.head.proj``
``modality_postprocessors.<m>.1.log_logit_scale``      ``postprocess.logit_scale.log_scale``
=====================================================  =========================================================

ImageBind's ``vision`` is OmniEmbed's ``image`` (the anchor); its text causal mask is a constant, checked and
dropped. ImageBind embeds a video with the vision encoder (5 clips of 2 s, 2 frames each, 3 spatial crops, the
mean over the 15 views; no audio): the converted model has a ``video`` modality set up that way, owning no
weights. Where ImageBind multiplies the unit vector by a logit scale in its forward, OmniEmbed keeps unit
vectors and exposes the same scale as ``encoder.logit_scale``.
"""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path
from typing import Any, Callable, Mapping

import torch

from ..config import HeadConfig, LogitScaleConfig, ModalityConfig, TransformerConfig
from ..errors import CheckpointError, ConfigError
from ..modalities.audio import AudioConfig
from ..model import OmniEmbedModel
from ..model_config import ModelConfig
from ..registry import get_modality
from ..weights import load_weight_file
from .arguments import read_arguments
from .imagebind_arch import (CONTEXT_LENGTH, IMAGE_SIZE, IMU_SAMPLES, MODALITIES, ImageBindArch, expected_shapes,
                             infer_arch)

OMNIEMBED_NAMES = {"vision": "image", "text": "text", "audio": "audio", "depth": "depth", "thermal": "thermal",
                   "imu": "imu"}
"""ImageBind modality key → OmniEmbed modality name."""
PREFIXES = ("modality_preprocessors.", "modality_trunks.", "modality_heads.", "modality_postprocessors.")
HEAD_NORM_EPS = 1e-6
VIDEO_CLIPS = 5
VIDEO_CLIP_SECONDS = 2.0
STEM_NORM_EPS = 1e-5


def imagebind_audio_config(trunk: TransformerConfig, head: HeadConfig, logit_scale: LogitScaleConfig,
                           exact: bool = True) -> AudioConfig:
    """The audio config of a converted ImageBind model: channel 0 only and shared-buffer mean removal. With
    ``exact`` also torchaudio's resampler and per-clip Kaldi fbank (the reference's own operations: its features
    up to float rounding); without, the batched path (within the stated tolerance, several times faster)."""
    return AudioConfig(channel_mix="first", mean_removal="shared_buffer",
                       resampler="torchaudio" if exact else "polyphase", fbank="kaldi" if exact else "batched",
                       trunk=trunk, head=head, logit_scale=logit_scale)


def load_imagebind(path: str | os.PathLike, config: Mapping[str, Any] | ImageBindArch | str | os.PathLike | None = None,
                   modalities: tuple[str, ...] | list[str] | None = None) -> OmniEmbedModel:
    """:func:`from_imagebind` on a checkpoint file: ``.pth``/``.pt`` read with ``torch.load(weights_only=True)``
    (nothing is unpickled), or ``.safetensors``. ``config`` may also be the path of a JSON file of ImageBind's
    constructor arguments."""
    if isinstance(config, (str, os.PathLike)):
        config = read_arguments(Path(config), "ImageBind", "constructor arguments such as audio_kernel_size")
    return from_imagebind(load_weight_file(path), config, modalities, source=str(path))


def from_imagebind(state_dict: Mapping[str, torch.Tensor], config: Mapping[str, Any] | ImageBindArch | None = None,
                   modalities: tuple[str, ...] | list[str] | None = None, source: str = "state dict") -> OmniEmbedModel:
    """An :class:`OmniEmbedModel` holding an ImageBind ``state_dict``'s weights, with the same numerics.

    ``config``: ImageBind's constructor arguments (a mapping, or :class:`ImageBindArch`) for what tensor shapes
    do not show — head counts of unreleased widths, the audio stride, drop-path rates; everything else is read
    from the shapes. ``modalities``: ImageBind modality keys to convert (default all six); the others' keys are
    then ignored. A missing, unexpected or mis-shaped tensor raises :class:`CheckpointError` naming the keys.
    """
    chosen = _choose(modalities)
    state = _strip_wrappers(state_dict, source)
    given = dataclasses.asdict(config) if isinstance(config, ImageBindArch) else dict(config or {})
    arch, imu_window = infer_arch(state, given, chosen)
    expected: dict[str, tuple[int, ...]] = {}
    for m in chosen:
        expected.update(expected_shapes(arch, m, imu_window))
    _check_keys(state, expected, chosen, source)
    _check_text_mask(state, chosen, source)

    model_config = omniembed_config(arch, imu_window, state, chosen)
    mapped = map_state_dict(state, arch, chosen)
    model = OmniEmbedModel(model_config)
    own = model.state_dict()
    missing, unexpected = sorted(set(own) - set(mapped)), sorted(set(mapped) - set(own))
    if missing or unexpected:  # a mapping bug, not a user error: say exactly what differs
        raise RuntimeError(f"ImageBind mapping does not fit the OmniEmbed encoders (unfilled: {missing[:6]}, "
                           f"unused: {unexpected[:6]})")
    # assign: the module takes the file's tensors instead of copying them into its random ones (one copy in memory)
    model.load_state_dict({k: v.to(own[k].dtype) for k, v in mapped.items()}, strict=True, assign=True)
    return model.eval()


# ---- OmniEmbed configs ---------------------------------------------------------------------------------------
def omniembed_config(arch: ImageBindArch, imu_window: int, state: Mapping[str, torch.Tensor],
                     modalities: tuple[str, ...] = MODALITIES) -> ModelConfig:
    """The :class:`ModelConfig` of the OmniEmbed model equivalent to ImageBind built with ``arch``."""
    if "vision" not in modalities:
        raise ConfigError("ImageBind's vision encoder is the anchor of the converted model: include 'vision'")
    builders: dict[str, Callable[[], ModalityConfig]] = {
        "vision": lambda: _image_config(arch),
        "text": lambda: _text_config(arch, _scale(state, "text")),
        "audio": lambda: _audio_config(arch, _scale(state, "audio")),
        "depth": lambda: _gray_config("depth", arch, _scale(state, "depth")),
        "thermal": lambda: _gray_config("thermal", arch, _scale(state, "thermal")),
        "imu": lambda: _imu_config(arch, imu_window, _scale(state, "imu")),
    }
    name = "imagebind_huge" if _is_huge(arch, imu_window) else "imagebind"
    configs = {OMNIEMBED_NAMES[m]: builders[m]() for m in modalities}
    configs["video"] = _video_config(arch)
    return ModelConfig(embed_dim=arch.out_embed_dim, anchor="image", name=name, modalities=configs)


def _trunk(arch: ImageBindArch, m: str, **flags: Any) -> TransformerConfig:
    return TransformerConfig(width=arch.width(m), depth=arch.blocks(m), heads=arch.heads(m), mlp_ratio=4.0,
                             drop_path=arch.drop_path(m), ln_eps=1e-6, **flags)


def _head() -> HeadConfig:
    return HeadConfig(pool="cls", norm=True, norm_eps=HEAD_NORM_EPS, bias=False)


def _fixed(scale: float) -> LogitScaleConfig:
    return LogitScaleConfig(init=scale, learnable=False, max=100.0)


def _image_config(arch: ImageBindArch) -> ModalityConfig:
    t, p, q = arch.kernel_size
    if p != q:
        raise ConfigError(f"ImageBind vision kernel {arch.kernel_size} is not square")
    if arch.video_frames != t:
        raise ConfigError(f"ImageBind vision with video_frames {arch.video_frames} ≠ temporal kernel {t} has more "
                          f"than one temporal patch, which OmniEmbed's image stem does not hold")
    cls = get_modality("image").config_cls
    # ImageBind's vision postprocessor only normalises: a fixed scale of 1 keeps "what the reference returns"
    return cls(image_size=IMAGE_SIZE, patch_size=p, temporal_kernel=t, patch_bias=False,
               trunk=_trunk(arch, "vision", pre_norm=True), head=_head(), logit_scale=_fixed(1.0))


def _video_config(arch: ImageBindArch) -> ModalityConfig:
    cls = get_modality("video").config_cls
    return cls(n_clips=VIDEO_CLIPS, clip_seconds=VIDEO_CLIP_SECONDS, frames_per_clip=arch.video_frames,
               spatial_crops=3, frames_from="image", fusion="frames")


def _text_config(arch: ImageBindArch, scale: float) -> ModalityConfig:
    cls = get_modality("text").config_cls
    return cls(tokenizer="clip_bpe", context_length=CONTEXT_LENGTH, vocab_size=arch.vocab_size,
               trunk=_trunk(arch, "text", causal=True), head=HeadConfig(pool="eos", norm_eps=HEAD_NORM_EPS),
               logit_scale=LogitScaleConfig(init=scale, learnable=True, max=100.0))


def _audio_config(arch: ImageBindArch, scale: float) -> ModalityConfig:
    # ImageBind's preprocessing (channel 0, shared-buffer mean removal, torchaudio resampler, Kaldi fbank)
    config = imagebind_audio_config(_trunk(arch, "audio", bias_kv=True), _head(), _fixed(scale))
    return dataclasses.replace(config, n_mels=arch.audio_num_mel_bins, target_frames=arch.audio_target_len,
                               patch_size=arch.audio_kernel_size, patch_stride=arch.audio_stride,
                               stem_norm_eps=STEM_NORM_EPS)


def _gray_config(m: str, arch: ImageBindArch, scale: float) -> ModalityConfig:
    cls = get_modality(m).config_cls
    return cls(image_size=IMAGE_SIZE, patch_size=getattr(arch, f"{m}_kernel_size"), stem_norm_eps=STEM_NORM_EPS,
               trunk=_trunk(arch, m, bias_kv=True), head=_head(), logit_scale=_fixed(scale))


def _imu_config(arch: ImageBindArch, window: int, scale: float) -> ModalityConfig:
    cls = get_modality("imu").config_cls
    return cls(channels=6, num_samples=IMU_SAMPLES, window=window, stem_norm_eps=STEM_NORM_EPS, head_dropout=0.5,
               trunk=_trunk(arch, "imu", bias_kv=True), head=_head(), logit_scale=_fixed(scale))


def _scale(state: Mapping[str, torch.Tensor], m: str) -> float:
    return math.exp(float(state[f"modality_postprocessors.{m}.1.log_logit_scale"]))


def _is_huge(arch: ImageBindArch, imu_window: int) -> bool:
    return imu_window == 8 and arch == ImageBindArch(audio_drop_path=arch.audio_drop_path,
                                                     depth_drop_path=arch.depth_drop_path,
                                                     thermal_drop_path=arch.thermal_drop_path,
                                                     imu_drop_path=arch.imu_drop_path)


# ---- weights ---------------------------------------------------------------------------------------------------
def map_state_dict(state: Mapping[str, torch.Tensor], arch: ImageBindArch,
                   modalities: tuple[str, ...] = MODALITIES) -> dict[str, torch.Tensor]:
    """ImageBind keys → OmniEmbed keys (``encoders.<modality>.…``); tensors are shared, not copied."""
    out: dict[str, torch.Tensor] = {}
    for m in modalities:
        enc = f"encoders.{OMNIEMBED_NAMES[m]}"
        for ib_key, oe_key in _stem_keys(m).items():
            out[f"{enc}.{oe_key}"] = state[ib_key]
        for ib_key, oe_key in _trunk_keys(m, arch).items():
            out[f"{enc}.trunk.transformer.{oe_key}"] = state[ib_key]
        for ib_key, oe_key in _head_keys(m).items():
            out[f"{enc}.{oe_key}"] = state[ib_key]
        scale = f"modality_postprocessors.{m}.1.log_logit_scale"
        out[f"{enc}.postprocess.logit_scale.log_scale"] = (state[scale] if m != "vision" else torch.tensor(0.0))
    return out


def _stem_keys(m: str) -> dict[str, str]:
    pre = f"modality_preprocessors.{m}"
    if m == "text":
        return {f"{pre}.token_embedding.weight": "stem.token_embed.weight", f"{pre}.pos_embed": "stem.pos_embed"}
    keys = {f"{pre}.cls_token": "stem.cls_token"}
    if m == "vision":
        keys.update({f"{pre}.rgbt_stem.proj.1.weight": "stem.proj.weight",
                     f"{pre}.pos_embedding_helper.pos_embed": "stem.pos_embed"})
        return keys
    stem = {"audio": "rgbt_stem", "depth": "depth_stem", "thermal": "rgbt_stem", "imu": "imu_stem"}[m]
    keys.update({f"{pre}.{stem}.proj.weight": "stem.proj.weight", f"{pre}.{stem}.norm_layer.weight": "stem.norm.weight",
                 f"{pre}.{stem}.norm_layer.bias": "stem.norm.bias"})
    keys[f"{pre}.pos_embed" if m == "imu" else f"{pre}.pos_embedding_helper.pos_embed"] = "stem.pos_embed"
    return keys


def _trunk_keys(m: str, arch: ImageBindArch) -> dict[str, str]:
    prefix = f"modality_trunks.{m}"
    keys: dict[str, str] = {}
    if m == "vision":
        keys.update({f"{prefix}.pre_transformer_layer.0.weight": "pre_norm.weight",
                     f"{prefix}.pre_transformer_layer.0.bias": "pre_norm.bias"})
    renames = {"attn.in_proj_weight": "attn.qkv.weight", "attn.in_proj_bias": "attn.qkv.bias",
               "attn.out_proj.weight": "attn.proj.weight", "attn.out_proj.bias": "attn.proj.bias",
               "norm_1.weight": "norm1.weight", "norm_1.bias": "norm1.bias",
               "norm_2.weight": "norm2.weight", "norm_2.bias": "norm2.bias",
               "mlp.fc1.weight": "mlp.fc1.weight", "mlp.fc1.bias": "mlp.fc1.bias",
               "mlp.fc2.weight": "mlp.fc2.weight", "mlp.fc2.bias": "mlp.fc2.bias"}
    if m not in ("vision", "text"):
        renames.update({"attn.bias_k": "attn.bias_k", "attn.bias_v": "attn.bias_v"})
    for i in range(arch.blocks(m)):
        keys.update({f"{prefix}.blocks.{i}.{a}": f"blocks.{i}.{b}" for a, b in renames.items()})
    return keys


def _head_keys(m: str) -> dict[str, str]:
    heads = f"modality_heads.{m}"
    if m == "text":
        return {f"{heads}.proj.0.weight": "head.head.norm.weight", f"{heads}.proj.0.bias": "head.head.norm.bias",
                f"{heads}.proj.1.weight": "head.head.proj.weight"}
    proj = 3 if m == "imu" else 2  # ImageBind's IMU head has a Dropout at index 2
    return {f"{heads}.0.weight": "head.head.norm.weight", f"{heads}.0.bias": "head.head.norm.bias",
            f"{heads}.{proj}.weight": "head.head.proj.weight"}


# ---- checks ----------------------------------------------------------------------------------------------------
def _choose(modalities: tuple[str, ...] | list[str] | None) -> tuple[str, ...]:
    if modalities is None:
        return MODALITIES
    unknown = sorted(set(modalities) - set(MODALITIES))
    if unknown:
        raise ConfigError(f"unknown ImageBind modality {', '.join(unknown)} (ImageBind has {', '.join(MODALITIES)})")
    return tuple(m for m in MODALITIES if m in modalities)


def _strip_wrappers(state: Mapping[str, torch.Tensor], source: str) -> dict[str, torch.Tensor]:
    """Drop a ``module.`` prefix (DistributedDataParallel); refuse anything that holds no ImageBind keys."""
    keys = list(state)
    if keys and all(k.startswith("module.") for k in keys):
        state = {k[len("module."):]: v for k, v in state.items()}
    if not any(k.startswith(PREFIXES) for k in state):
        sample = ", ".join(sorted(state)[:6]) or "(no keys)"
        raise CheckpointError(f"{source}: not an ImageBind state dict — none of its {len(state)} keys starts with "
                              f"{' / '.join(p.rstrip('.') for p in PREFIXES)} (unexpected keys: {sample} …)")
    return dict(state)


def _check_keys(state: Mapping[str, torch.Tensor], expected: Mapping[str, tuple[int, ...]],
                chosen: tuple[str, ...], source: str) -> None:
    skipped = tuple(f"{p}{m}." for p in PREFIXES for m in MODALITIES if m not in chosen)
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(k for k in set(state) - set(expected) if not k.startswith(skipped))
    mis_shaped = [f"{k} {tuple(state[k].shape)} (expected {v})" for k, v in expected.items()
                  if k in state and tuple(state[k].shape) != v]
    if missing or unexpected or mis_shaped:
        parts = [f"{label} ({len(items)}): {', '.join(items[:8])}{' …' if len(items) > 8 else ''}"
                 for label, items in (("missing", missing), ("unexpected", unexpected),
                                      ("shape mismatch", mis_shaped)) if items]
        raise CheckpointError(f"{source}: does not match ImageBind's layout — {'; '.join(parts)}")


def _check_text_mask(state: Mapping[str, torch.Tensor], chosen: tuple[str, ...], source: str) -> None:
    if "text" not in chosen:
        return
    mask = state["modality_preprocessors.text.mask"]
    causal = torch.full_like(mask, float("-inf")).triu(1)
    if not torch.equal(mask, causal):
        raise CheckpointError(f"{source}: modality_preprocessors.text.mask is not the causal mask this converter "
                              f"reproduces")
