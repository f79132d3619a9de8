"""ImageBind's architecture as data: its constructor arguments, the state-dict layout they imply, and the
inverse — reading those arguments back from a state dict's tensor shapes.

Everything that sets a tensor's shape is inferred (widths, depths, kernels, token counts, the shared dim).
Three things are not visible in shapes: attention head counts (known for released widths, else given),
the audio stride (checked against the audio token count) and drop-path rates (training only; ImageBind's
defaults).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any, Mapping

import torch

from ..errors import ConfigError

MODALITIES = ("vision", "text", "audio", "depth", "thermal", "imu")
"""ImageBind's modality keys, in its own order."""
IMAGE_SIZE = 224
CONTEXT_LENGTH = 77
IMU_CHANNELS = 6
IMU_SAMPLES = 2000
KNOWN_HEADS: dict[str, dict[int, int]] = {
    "vision": {1024: 16, 1280: 16},
    "text": {768: 12, 1024: 16},
    "audio": {768: 12},
    "depth": {384: 8},
    "thermal": {768: 12},
    "imu": {512: 8},
}
"""Head counts of the widths ImageBind ships (``imagebind_huge``) or defaults to in ``ImageBindModel``."""

Shapes = dict[str, tuple[int, ...]]


@dataclass
class ImageBindArch:
    """``ImageBindModel``'s constructor arguments, under its own names; the defaults are ``imagebind_huge``.

    ``imu_kernel_size`` is listed because ImageBind's constructor takes it, but its IMU stem always uses windows
    of 8 samples (Linear(48, D)); the window is read from the weights instead.
    """

    video_frames: int = 2
    kernel_size: tuple[int, int, int] = (2, 14, 14)
    audio_kernel_size: int = 16
    audio_stride: int = 10
    out_embed_dim: int = 1024
    vision_embed_dim: int = 1280
    vision_num_blocks: int = 32
    vision_num_heads: int = 16
    audio_embed_dim: int = 768
    audio_num_blocks: int = 12
    audio_num_heads: int = 12
    audio_num_mel_bins: int = 128
    audio_target_len: int = 204
    audio_drop_path: float = 0.1
    text_embed_dim: int = 1024
    text_num_blocks: int = 24
    text_num_heads: int = 16
    depth_embed_dim: int = 384
    depth_kernel_size: int = 16
    depth_num_blocks: int = 12
    depth_num_heads: int = 8
    depth_drop_path: float = 0.0
    thermal_embed_dim: int = 768
    thermal_kernel_size: int = 16
    thermal_num_blocks: int = 12
    thermal_num_heads: int = 12
    thermal_drop_path: float = 0.0
    imu_embed_dim: int = 512
    imu_kernel_size: int = 8
    imu_num_blocks: int = 6
    imu_num_heads: int = 8
    imu_drop_path: float = 0.7
    vocab_size: int = 49408
    """Not an ImageBind argument (it fixes 49408); read from the token embedding."""

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], source: str = "config") -> ImageBindArch:
        """From ImageBind's constructor keyword arguments (e.g. a JSON file of them); unknown names are errors."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ConfigError(f"{source}: unknown ImageBind argument(s) {', '.join(unknown)}")
        values = dict(values)
        if "kernel_size" in values:
            values["kernel_size"] = tuple(int(v) for v in values["kernel_size"])
        return cls(**values)

    def width(self, modality: str) -> int:
        return getattr(self, f"{modality}_embed_dim")

    def blocks(self, modality: str) -> int:
        return getattr(self, f"{modality}_num_blocks")

    def heads(self, modality: str) -> int:
        return getattr(self, f"{modality}_num_heads")

    def drop_path(self, modality: str) -> float:
        return getattr(self, f"{modality}_drop_path", 0.0)

    def audio_grid(self) -> tuple[int, int]:
        """(frequency, time) patches of the audio stem's conv over [1, mel bins, target length]."""
        k, s = self.audio_kernel_size, self.audio_stride
        return (self.audio_num_mel_bins - k) // s + 1, (self.audio_target_len - k) // s + 1

    def vision_patches(self) -> int:
        t, p, _ = self.kernel_size
        return (self.video_frames // t) * (IMAGE_SIZE // p) ** 2


# ---- the state-dict layout -------------------------------------------------------------------------------------
def trunk_shapes(prefix: str, width: int, blocks: int, bias_kv: bool, pre_norm: bool) -> Shapes:
    shapes: Shapes = {}
    if pre_norm:
        shapes.update({f"{prefix}.pre_transformer_layer.0.weight": (width,),
                       f"{prefix}.pre_transformer_layer.0.bias": (width,)})
    for i in range(blocks):
        b = f"{prefix}.blocks.{i}"
        shapes.update({
            f"{b}.attn.in_proj_weight": (3 * width, width), f"{b}.attn.in_proj_bias": (3 * width,),
            f"{b}.attn.out_proj.weight": (width, width), f"{b}.attn.out_proj.bias": (width,),
            f"{b}.norm_1.weight": (width,), f"{b}.norm_1.bias": (width,),
            f"{b}.norm_2.weight": (width,), f"{b}.norm_2.bias": (width,),
            f"{b}.mlp.fc1.weight": (4 * width, width), f"{b}.mlp.fc1.bias": (4 * width,),
            f"{b}.mlp.fc2.weight": (width, 4 * width), f"{b}.mlp.fc2.bias": (width,),
        })
        if bias_kv:
            shapes.update({f"{b}.attn.bias_k": (1, 1, width), f"{b}.attn.bias_v": (1, 1, width)})
    return shapes


def expected_shapes(arch: ImageBindArch, modality: str, imu_window: int = 8) -> Shapes:
    """Every key (and shape) of one modality in an ImageBind state dict built with ``arch``."""
    m, w, e = modality, arch.width(modality), arch.out_embed_dim
    pre, heads, post = f"modality_preprocessors.{m}", f"modality_heads.{m}", f"modality_postprocessors.{m}"
    shapes: Shapes = trunk_shapes(f"modality_trunks.{m}", w, arch.blocks(m), bias_kv=m not in ("vision", "text"),
                                  pre_norm=m == "vision")
    if m == "text":
        shapes.update({f"{pre}.token_embedding.weight": (arch.vocab_size, w),
                       f"{pre}.pos_embed": (1, CONTEXT_LENGTH, w), f"{pre}.mask": (CONTEXT_LENGTH, CONTEXT_LENGTH),
                       f"{heads}.proj.0.weight": (w,), f"{heads}.proj.0.bias": (w,),
                       f"{heads}.proj.1.weight": (e, w), f"{post}.1.log_logit_scale": ()})
        return shapes
    proj = {"vision": 2, "imu": 3}.get(m, 2)
    shapes.update({f"{pre}.cls_token": (1, 1, w), f"{heads}.0.weight": (w,), f"{heads}.0.bias": (w,),
                   f"{heads}.{proj}.weight": (e, w)})
    if m != "vision":
        shapes[f"{post}.1.log_logit_scale"] = ()
    if m == "vision":
        shapes.update({f"{pre}.rgbt_stem.proj.1.weight": (w, 3, *arch.kernel_size),
                       f"{pre}.pos_embedding_helper.pos_embed": (1, 1 + arch.vision_patches(), w)})
    elif m == "imu":
        shapes.update({f"{pre}.imu_stem.proj.weight": (w, IMU_CHANNELS * imu_window),
                       f"{pre}.imu_stem.norm_layer.weight": (w,), f"{pre}.imu_stem.norm_layer.bias": (w,),
                       f"{pre}.pos_embed": (1, 1 + IMU_SAMPLES // imu_window, w)})
    else:
        stem = {"audio": "rgbt_stem", "depth": "depth_stem", "thermal": "rgbt_stem"}[m]
        if m == "audio":
            k = arch.audio_kernel_size
            freq, time = arch.audio_grid()
            patches = freq * time
        else:
            k = getattr(arch, f"{m}_kernel_size")
            patches = (IMAGE_SIZE // k) ** 2
        shapes.update({f"{pre}.{stem}.proj.weight": (w, 1, k, k), f"{pre}.{stem}.norm_layer.weight": (w,),
                       f"{pre}.{stem}.norm_layer.bias": (w,),
                       f"{pre}.pos_embedding_helper.pos_embed": (1, 1 + patches, w)})
    return shapes


# ---- reading the arguments back from shapes --------------------------------------------------------------------
def infer_arch(state: Mapping[str, torch.Tensor], given: Mapping[str, Any] | None = None,
               modalities: tuple[str, ...] = MODALITIES) -> tuple[ImageBindArch, int]:
    """ImageBind's constructor arguments from tensor shapes (``given`` values win), and the IMU window.

    A key needed for inference that is absent leaves that argument at its ``imagebind_huge`` default; the
    caller's comparison of :func:`expected_shapes` with the state dict then reports the key as missing.
    """
    given = dict(given or {})
    found: dict[str, Any] = {}

    def shape(key: str) -> tuple[int, ...] | None:
        t = state.get(key)
        return tuple(t.shape) if t is not None else None

    pre = "modality_preprocessors"
    out = shape("modality_heads.vision.2.weight")
    if out is not None:
        found["out_embed_dim"] = out[0]
    conv = shape(f"{pre}.vision.rgbt_stem.proj.1.weight")
    if conv is not None and len(conv) == 5:
        found["vision_embed_dim"], found["kernel_size"] = conv[0], tuple(conv[2:])
        pos = shape(f"{pre}.vision.pos_embedding_helper.pos_embed")
        grid = (IMAGE_SIZE // conv[3]) ** 2
        if pos is not None and (pos[1] - 1) % grid == 0:
            found["video_frames"] = conv[2] * ((pos[1] - 1) // grid)
    emb = shape(f"{pre}.text.token_embedding.weight")
    if emb is not None:
        found["vocab_size"], found["text_embed_dim"] = emb
    conv = shape(f"{pre}.audio.rgbt_stem.proj.weight")
    if conv is not None and len(conv) == 4:
        found["audio_embed_dim"], found["audio_kernel_size"] = conv[0], conv[-1]
    for m in ("depth", "thermal"):
        conv = shape(f"{pre}.{m}.{'depth_stem' if m == 'depth' else 'rgbt_stem'}.proj.weight")
        if conv is not None and len(conv) == 4:
            found[f"{m}_embed_dim"], found[f"{m}_kernel_size"] = conv[0], conv[-1]
    proj = shape(f"{pre}.imu.imu_stem.proj.weight")
    imu_window = 8
    if proj is not None and len(proj) == 2:
        found["imu_embed_dim"] = proj[0]
        if proj[1] % IMU_CHANNELS == 0:
            imu_window = proj[1] // IMU_CHANNELS
    for m in MODALITIES:
        indices = [int(g) for k in state for g in re.findall(rf"^modality_trunks\.{m}\.blocks\.(\d+)\.", k)]
        if indices:
            found[f"{m}_num_blocks"] = max(indices) + 1

    values = {**found, **given}
    arch = ImageBindArch.from_mapping(values, source="ImageBind arguments")
    for m in modalities:
        if f"{m}_num_heads" in given:
            continue
        width = arch.width(m)
        if width in KNOWN_HEADS[m]:
            setattr(arch, f"{m}_num_heads", KNOWN_HEADS[m][width])
        elif f"{m}_embed_dim" in found:
            raise ConfigError(f"the {m} trunk is {width} wide, not a width ImageBind ships, and head counts "
                              f"do not show in tensor shapes: give {m}_num_heads (e.g. config={{'{m}_num_heads': "
                              f"{max(1, width // 64)}}} or --config imagebind_args.json)")
    _check_audio_grid(arch, state, given)
    return arch, imu_window


def _check_audio_grid(arch: ImageBindArch, state: Mapping[str, torch.Tensor], given: Mapping[str, Any]) -> None:
    pos = state.get("modality_preprocessors.audio.pos_embedding_helper.pos_embed")
    if pos is None or pos.ndim != 3:
        return
    freq, time = arch.audio_grid()
    if pos.shape[1] != 1 + freq * time:
        raise ConfigError(
            f"the audio position table has {pos.shape[1] - 1} patch positions, but kernel "
            f"{arch.audio_kernel_size} with stride {arch.audio_stride} over {arch.audio_num_mel_bins} mel bins × "
            f"{arch.audio_target_len} frames gives {freq} × {time}: give audio_stride, audio_num_mel_bins and "
            f"audio_target_len (ImageBind's constructor arguments) in the config")
