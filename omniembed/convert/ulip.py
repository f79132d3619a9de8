"""ULIP / ULIP-2 Point-BERT checkpoint → OmniEmbed model, with ULIP's numerics.

ULIP's point branch maps onto the point-cloud encoder one to one (no arithmetic but one transpose):

=====================================================  =========================================================
ULIP (``point_encoder.`` …)                            OmniEmbed (``encoders.pointcloud.``)
=====================================================  =========================================================
``encoder.first_conv.{0,1,3}``, ``second_conv.{0,1,3}``  ``stem.encoder.first.{0,1,3}``, ``stem.encoder.second.…``
``reduce_dim``, ``pos_embed.{0,2}``                    ``stem.reduce``, ``stem.pos_embed.{0,2}``
``cls_token``, ``cls_pos``                             ``stem.cls_token``, ``stem.cls_pos``
``blocks.blocks.<i>.{norm1,attn.qkv,attn.proj,…}``     ``trunk.transformer.blocks.<i>.…`` (qkv bias: zeros)
``norm``                                               ``head.head.norm``
``pc_projection`` [2·C, E] (``pc_feat @ P``)           ``head.head.proj.weight`` = Pᵀ
=====================================================  =========================================================

The point-cloud config then follows ULIP's code: ``fps_rule="pointnet2"`` (the CUDA kernel's start, skip and
tie rules), ``pos_every_block`` (``x = block(x + pos)``), LayerNorm eps 1e-5, ``preprocessing="ulip"`` (its
loader's point order and ``pc_normalize``), 8,192 xyz points for ULIP-1 and 10,000 xyz + rgb points for
ULIP-2. Widths, depth, input channels and the projection width are read from the tensor shapes; the head
count, group count and group size are not in the shapes and come from :class:`UlipArch` (defaults: ULIP's
released yaml files). ``encode_pc`` returns ``pc_feat @ pc_projection`` unnormalised: that is the converted
encoder's ``features``; ``embed`` L2-normalises it, as ULIP's zero-shot scoring does.

The image and text towers a checkpoint carries are converted through OmniEmbed's own open_clip / timm paths
(:mod:`.ulip_towers`) or, with ``towers=False``, left out; either way the result names them.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch

from ..config import HeadConfig, LogitScaleConfig, ModalityConfig, TransformerConfig
from ..errors import CheckpointError, ConfigError
from ..io import file_sha256
from ..model import OmniEmbedModel
from ..model_config import ModelConfig
from ..registry import get_modality
from ..weights import load_weight_file
from .arguments import read_arguments as read_json_arguments
from .ulip_towers import OPEN_CLIP_PREFIX, TowerPlan, plan_towers

POINT_PREFIX = "point_encoder."
PROJECTION = "pc_projection"
LOGIT_SCALE = "logit_scale"
LN_EPS = 1e-5
"""ULIP's Point-BERT uses ``nn.LayerNorm``'s default eps in its blocks and final norm."""
CODE_LICENCE = "BSD-3-Clause (salesforce/ULIP, © 2022 Salesforce.com)"
WEIGHTS_LICENCE = ("not stated by salesforce/ULIP (its README licenses the code and the released data only); the "
                   "weights were trained on ShapeNet / Objaverse-derived data, under those datasets' terms")


@dataclass
class UlipArch:
    """What a ULIP checkpoint's tensor shapes do not show. Defaults: ULIP's released Point-BERT yaml files."""

    num_heads: int = 6
    num_group: int = 512
    group_size: int = 32
    drop_path_rate: float = 0.1
    npoints: int | None = None
    """Points per cloud; None: 8,192 for xyz checkpoints (ULIP-1), 10,000 for xyz + rgb ones (ULIP-2)."""
    clip_arch: str | None = None
    """open_clip architecture of the towers; None: ``ViT-B-16`` (ULIP-1's SLIP text tower) or
    ``ViT-bigG-14`` (ULIP-2's ``open_clip_model``)."""
    clip_pretrained: str | None = None
    """open_clip pretrained tag (its preprocessing, QuickGELU); None: ``openai`` / ``laion2b_s39b_b160k``."""
    clip_weights: str | None = None
    """A local open_clip weight file for ULIP-2's towers when the checkpoint holds no ``open_clip_model.*``
    (ULIP-2 trains against open_clip's ``ViT-bigG-14`` ``laion2b_s39b_b160k``, frozen)."""
    preprocessing: str = "ulip"
    """The point-cloud preprocessing: ``"ulip"`` (its loader's order, then ``pc_normalize``) or
    ``"ulip_as_stored"`` (xyz as the file holds it, as ULIP-2's ModelNet40 evaluation feeds it)."""
    vision_model: str = "vit_base_patch16_224"
    """timm name of ULIP-1's image tower (SLIP's ViT-B/16)."""
    vision_kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class PointShapes:
    """Sizes of ULIP's point branch, read from its tensors."""

    width: int
    depth: int
    in_channels: int
    hidden: int
    encoder_dims: int
    pos_hidden: int
    mlp_hidden: int
    embed_dim: int

    @property
    def variant(self) -> str:
        """What the shapes say: ULIP-2's colored encoder, or an xyz-only one (ULIP-1, or the early ULIP-2)."""
        return "ULIP-2 colored" if self.in_channels == 6 else "ULIP xyz-only"


def load_ulip(path: str | os.PathLike, config: Mapping[str, Any] | UlipArch | str | os.PathLike | None = None,
              towers: bool = True) -> OmniEmbedModel:
    """:func:`from_ulip` on a checkpoint file: ``.pt``/``.pth`` read with ``torch.load(weights_only=True)``
    (``{"state_dict": …}`` is unwrapped; see :func:`read_checkpoint`) or ``.safetensors``. ``config`` may be the path
    of a JSON file of :class:`UlipArch` fields (ULIP's yaml names ``num_heads`` … are used as they are)."""
    if isinstance(config, (str, os.PathLike)):
        config = read_arguments(Path(config))
    return from_ulip(read_checkpoint(path), config, towers=towers, source=str(path))


def read_checkpoint(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The state dict of a ULIP checkpoint file. ULIP's ``main.py`` saves ``{"state_dict", "optimizer",
    "scaler", "epoch", "best_acc1", "args"}`` with ``args`` an ``argparse.Namespace``: that one class is allowed
    to ``torch.load(weights_only=True)`` (it only holds the run's options); nothing else is unpickled."""
    path = Path(path)
    if path.suffix == ".safetensors" or not path.is_file():
        return load_weight_file(path)
    with torch.serialization.safe_globals([argparse.Namespace]):
        return load_weight_file(path)


def from_ulip(state_dict: Mapping[str, torch.Tensor], config: Mapping[str, Any] | UlipArch | None = None,
              towers: bool = True, source: str = "state dict") -> OmniEmbedModel:
    """An :class:`OmniEmbedModel` whose ``pointcloud`` encoder is ULIP's point branch with the same numerics,
    plus the image / text towers the checkpoint carries (``towers=False``: point cloud only).

    ``state_dict``: ULIP's ``torch.load(f)["state_dict"]`` (``module.`` prefixes are stripped). ``config``:
    :class:`UlipArch` or a mapping of its fields. A state dict without ULIP's point keys, or with a missing,
    unexpected or mis-shaped tensor, raises :class:`CheckpointError` naming the keys. The model's
    ``source`` record (``source.json`` once saved) names the file, the variant, the towers converted or skipped and
    the licences.
    """
    arch = _arch(config)
    state = _strip_module(state_dict)
    if arch.clip_weights and towers and not any(k.startswith(OPEN_CLIP_PREFIX) for k in state):
        state.update({OPEN_CLIP_PREFIX + k: v for k, v in _strip_module(load_weight_file(arch.clip_weights)).items()})
    point_keys = {k for k in state if k.startswith(POINT_PREFIX) or k == PROJECTION}
    plan = plan_towers(state, arch, towers)
    unexpected = sorted(set(state) - point_keys - plan.keys - {LOGIT_SCALE})
    if not any(k.startswith(POINT_PREFIX) for k in state) or PROJECTION not in state:
        missing = [k for k in (f"{POINT_PREFIX}cls_token", f"{POINT_PREFIX}encoder.first_conv.0.weight",
                               PROJECTION) if k not in state]
        raise CheckpointError(f"{source}: not a ULIP checkpoint — missing {', '.join(missing)}; "
                              f"unexpected keys ({len(unexpected)}): {_listing(unexpected)}")
    shapes = infer_shapes(state, source)
    _check_keys(state, point_keys, expected_shapes(shapes), unexpected, source)

    point = pointcloud_config(shapes, arch, _logit_scale(state))
    modalities: dict[str, ModalityConfig] = {"pointcloud": point, **plan.configs}
    anchor = "image" if "image" in modalities else "text" if "text" in modalities else "pointcloud"
    model_config = ModelConfig(embed_dim=shapes.embed_dim, anchor=anchor, modalities=modalities,
                               name=f"ulip{'2' if shapes.in_channels == 6 else ''}_pointbert")
    model = OmniEmbedModel(model_config)
    mapped = {f"encoders.pointcloud.{k}": v for k, v in map_point_state(state, shapes).items()}
    mapped.update(plan.mapped(state))
    own = model.state_dict()
    _check_towers(own, mapped, plan, source)
    model.load_state_dict({k: v.to(own[k].dtype) for k, v in mapped.items()}, strict=False, assign=True)
    model.source = provenance(source, shapes, point, plan)
    if arch.clip_weights and towers:
        # the file's name only: the record goes into model cards that get pushed, a local path must not
        model.source["clip_weights"] = Path(arch.clip_weights).name
    return model.eval()


# ---- shapes and configs ---------------------------------------------------------------------------------------
def infer_shapes(state: Mapping[str, torch.Tensor], source: str) -> PointShapes:
    """Every size of the point branch from its tensors (released checkpoints differ: ULIP-2's early
    ``pointbert_ULIP-2.pt`` is xyz-only with a 512-wide projection, the colored 10k one 6 channels and 1280)."""
    p = POINT_PREFIX
    try:
        width = state[f"{p}cls_token"].shape[-1]
        first = state[f"{p}encoder.first_conv.0.weight"]
        blocks = {int(m.group(1)) for k in state if (m := re.match(rf"{re.escape(p)}blocks\.blocks\.(\d+)\.", k))}
        shapes = PointShapes(width=width, depth=len(blocks), in_channels=first.shape[1], hidden=first.shape[0],
                             encoder_dims=state[f"{p}encoder.second_conv.3.weight"].shape[0],
                             pos_hidden=state[f"{p}pos_embed.0.weight"].shape[0],
                             mlp_hidden=state[f"{p}blocks.blocks.0.mlp.fc1.weight"].shape[0],
                             embed_dim=state[PROJECTION].shape[1])
    except KeyError as exc:
        raise CheckpointError(f"{source}: ULIP point encoder incomplete — missing {exc.args[0]}") from None
    if blocks != set(range(len(blocks))):
        raise CheckpointError(f"{source}: ULIP blocks are not numbered 0…{len(blocks) - 1}: {sorted(blocks)}")
    if shapes.in_channels not in (3, 6):
        raise CheckpointError(f"{source}: {p}encoder.first_conv.0.weight takes {shapes.in_channels} channels; "
                              f"ULIP's point encoders take 3 (xyz) or 6 (xyz + rgb)")
    if state[PROJECTION].shape[0] != 2 * width:
        raise CheckpointError(f"{source}: {PROJECTION} {tuple(state[PROJECTION].shape)} does not take the "
                              f"encoder's {2 * width}-wide [CLS, max-pool] feature")
    return shapes


def expected_shapes(s: PointShapes) -> dict[str, tuple[int, ...]]:
    """ULIP's point-branch keys (``module.`` stripped) → shapes, for a model of sizes ``s``."""
    p, c, h = POINT_PREFIX, s.width, s.hidden
    out: dict[str, tuple[int, ...]] = {f"{p}cls_token": (1, 1, c), f"{p}cls_pos": (1, 1, c),
                                       PROJECTION: (2 * c, s.embed_dim)}
    convs = {"first_conv.0": (h, s.in_channels, 1), "first_conv.3": (2 * h, h, 1),
             "second_conv.0": (4 * h, 4 * h, 1), "second_conv.3": (s.encoder_dims, 4 * h, 1)}
    for name, shape in convs.items():
        out.update({f"{p}encoder.{name}.weight": shape, f"{p}encoder.{name}.bias": (shape[0],)})
    for name, n in (("first_conv.1", h), ("second_conv.1", 4 * h)):
        out.update({f"{p}encoder.{name}.{t}": (n,) for t in ("weight", "bias", "running_mean", "running_var")})
        out[f"{p}encoder.{name}.num_batches_tracked"] = ()
    linears = {"reduce_dim": (c, s.encoder_dims), "pos_embed.0": (s.pos_hidden, 3), "pos_embed.2": (c, s.pos_hidden)}
    for i in range(s.depth):
        b = f"blocks.blocks.{i}"
        linears.update({f"{b}.attn.proj": (c, c), f"{b}.mlp.fc1": (s.mlp_hidden, c), f"{b}.mlp.fc2": (c, s.mlp_hidden)})
        out[f"{p}{b}.attn.qkv.weight"] = (3 * c, c)  # ULIP's qkv has no bias
        out.update({f"{p}{b}.{n}.{t}": (c,) for n in ("norm1", "norm2") for t in ("weight", "bias")})
    for name, shape in linears.items():
        out.update({f"{p}{name}.weight": shape, f"{p}{name}.bias": (shape[0],)})
    out.update({f"{p}norm.weight": (c,), f"{p}norm.bias": (c,)})
    return out


def pointcloud_config(s: PointShapes, arch: UlipArch, logit_scale: float) -> ModalityConfig:
    """The point-cloud config that computes what ULIP's ``encode_pc`` computes, fed as its loader feeds it."""
    n_points = arch.npoints or (10000 if s.in_channels == 6 else 8192)
    cls = get_modality("pointcloud").config_cls
    return cls(n_points=n_points, extra="rgb" if s.in_channels == 6 else "none", n_groups=arch.num_group,
               group_size=arch.group_size, encoder_dims=s.encoder_dims, stem_hidden=s.hidden,
               pos_hidden=s.pos_hidden, preprocessing=arch.preprocessing, fps_rule="pointnet2", pos_every_block=True,
               trunk=TransformerConfig(width=s.width, depth=s.depth, heads=arch.num_heads,
                                       mlp_ratio=s.mlp_hidden / s.width, drop_path=arch.drop_path_rate,
                                       ln_eps=LN_EPS),
               head=HeadConfig(pool="cls_max", norm=True, norm_eps=LN_EPS, bias=False),
               logit_scale=LogitScaleConfig(init=logit_scale, learnable=False, max=100.0))


def map_point_state(state: Mapping[str, torch.Tensor], s: PointShapes) -> dict[str, torch.Tensor]:
    """ULIP point-branch keys → keys under ``encoders.pointcloud.``; tensors shared, ``pc_projection``
    transposed (ULIP multiplies on the right), a zero qkv bias added (ULIP's has none)."""
    p = POINT_PREFIX
    renames = {"cls_token": "stem.cls_token", "cls_pos": "stem.cls_pos", "norm.": "head.head.norm.",
               "encoder.first_conv.": "stem.encoder.first.", "encoder.second_conv.": "stem.encoder.second.",
               "reduce_dim.": "stem.reduce.", "pos_embed.": "stem.pos_embed.",
               "blocks.blocks.": "trunk.transformer.blocks."}
    out: dict[str, torch.Tensor] = {}
    for key, tensor in state.items():
        if not key.startswith(p):
            continue
        rest = key[len(p):]
        prefix = next(a for a in renames if rest.startswith(a))
        out[renames[prefix] + rest[len(prefix):]] = tensor
    for i in range(s.depth):
        qkv = state[f"{p}blocks.blocks.{i}.attn.qkv.weight"]
        out[f"trunk.transformer.blocks.{i}.attn.qkv.bias"] = qkv.new_zeros(qkv.shape[0])
    out["head.head.proj.weight"] = state[PROJECTION].T
    return out


def provenance(source: str, s: PointShapes, point: ModalityConfig, plan: TowerPlan) -> dict[str, Any]:
    """The ``source.json`` record of a conversion (:mod:`omniembed.provenance`), with what ULIP adds to it."""
    name = Path(source).name
    record: dict[str, Any] = {
        "name": f"ulip:{name}", "url": f"local file {name}", "licence": WEIGHTS_LICENCE, "sha256_published": False,
        "description": f"{s.variant} converted with omniembed convert ulip (code: {CODE_LICENCE})",
        "converted_from": name, "format": s.variant, "reference": "salesforce/ULIP (Point-BERT point encoder)",
        "point_encoder": {"input": "xyz + rgb" if s.in_channels == 6 else "xyz", "n_points": point.n_points,
                          "width": s.width, "depth": s.depth, "embed_dim": s.embed_dim},
        "towers_converted": plan.converted, "towers_skipped": plan.skipped,
        "code_licence": CODE_LICENCE, "weights_licence": WEIGHTS_LICENCE,
    }
    if Path(source).is_file():
        record["sha256"] = file_sha256(source)
    return record


# ---- checks ----------------------------------------------------------------------------------------------------
def _strip_module(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop the ``module.`` prefix DistributedDataParallel puts on every key (ULIP saves it so)."""
    return {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}


def _check_keys(state: Mapping[str, torch.Tensor], present: set[str], expected: Mapping[str, tuple[int, ...]],
                unexpected: list[str], source: str) -> None:
    missing = sorted(set(expected) - present)
    unexpected = sorted(set(unexpected) | (present - set(expected)))
    mis_shaped = [f"{k} {tuple(state[k].shape)} (expected {v})" for k, v in expected.items()
                  if k in state and tuple(state[k].shape) != v]
    if missing or unexpected or mis_shaped:
        parts = [f"{label} ({len(items)}): {_listing(items)}" for label, items in
                 (("missing", missing), ("unexpected", unexpected), ("shape mismatch", mis_shaped)) if items]
        raise CheckpointError(f"{source}: does not match ULIP's Point-BERT layout — {'; '.join(parts)}")


def _check_towers(own: Mapping[str, torch.Tensor], mapped: Mapping[str, torch.Tensor], plan: TowerPlan,
                  source: str) -> None:
    """The point keys are checked against ULIP's layout before; what differs here is a tower that does not fit
    the open_clip / timm model chosen for it. Logit scales the checkpoint lacks keep their initial values."""
    own_scales = {k for k in own if k.endswith(("postprocess.logit_scale.log_scale", "clip.logit_scale"))}
    missing = sorted(set(own) - set(mapped) - own_scales)
    unexpected = sorted(set(mapped) - set(own))
    mis_shaped = [f"{k} {tuple(v.shape)} (expected {tuple(own[k].shape)})" for k, v in mapped.items()
                  if k in own and v.shape != own[k].shape]
    if missing or unexpected or mis_shaped:
        parts = [f"{label} ({len(items)}): {_listing(items)}" for label, items in
                 (("missing", missing), ("unexpected", unexpected), ("shape mismatch", mis_shaped)) if items]
        raise CheckpointError(f"{source}: its towers do not fit {'; '.join(plan.converted)} — {'; '.join(parts)} "
                              f"(pick the towers' architecture with clip_arch / vision_model, or convert without "
                              f"towers)")


def _listing(items: list[str], limit: int = 8) -> str:
    return ", ".join(items[:limit]) + (" …" if len(items) > limit else "") if items else "(none)"


def _logit_scale(state: Mapping[str, torch.Tensor]) -> float:
    """ULIP's learned ``logit_scale`` (a log), as the scale itself; CLIP's initial 1/0.07 when absent."""
    return math.exp(float(state[LOGIT_SCALE])) if LOGIT_SCALE in state else 1 / 0.07


def _arch(config: Mapping[str, Any] | UlipArch | None) -> UlipArch:
    if isinstance(config, UlipArch):
        return config
    values = dict(config or {})
    names = {f.name for f in dataclasses.fields(UlipArch)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ConfigError(f"unknown ULIP argument(s) {', '.join(unknown)} (known: {', '.join(sorted(names))})")
    return UlipArch(**values)


def read_arguments(path: Path) -> dict[str, Any]:
    """A JSON object of :class:`UlipArch` fields (``--config``); ConfigError naming the file otherwise."""
    return read_json_arguments(path, "ULIP", "num_heads, num_group, …")
