"""Converters from a downloaded peer checkpoint to an OmniEmbed model, by the name a source's ``converter`` gives."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from ..model import OmniEmbedModel


@dataclass(frozen=True)
class Converter:
    convert: Callable[[Path, Mapping[str, Any]], OmniEmbedModel]
    """(weight file, converter arguments) → model; the file is read without unpickling."""
    parameters: Callable[[Mapping[str, Any]], int]
    """The parameter count the arguments imply, without any weights (for listings)."""


def _imagebind_convert(path: Path, arguments: Mapping[str, Any]) -> OmniEmbedModel:
    from ..convert import load_imagebind

    return load_imagebind(path, config=dict(arguments))


def _imagebind_parameters(arguments: Mapping[str, Any]) -> int:
    from ..convert.imagebind_arch import MODALITIES, ImageBindArch, expected_shapes

    arch = ImageBindArch.from_mapping(arguments)
    # the text causal mask is a buffer, not a parameter; ImageBind's IMU stem always reads windows of 8 samples
    return sum(math.prod(shape) for m in MODALITIES for key, shape in expected_shapes(arch, m, 8).items()
               if not key.endswith(".mask"))


CONVERTERS: dict[str, Converter] = {
    "imagebind": Converter(_imagebind_convert, _imagebind_parameters),
}
