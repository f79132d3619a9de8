"""The table of named pretrained sources: where each weight file is, how to check it, how to convert it, and the
licence that travels with it.

A source whose publisher gives no sha256 has ``sha256=None``; this is explicit, not an oversight. Such a file
is accepted when the download is complete (the server's length), the converter's strict check of every tensor
name and shape passes, and its digest is then recorded beside the converted model (``source.json``), so that
the copy a user holds can be compared with anyone else's. A file a user places by hand is checked the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from .errors import UnknownSourceError

CC_BY_NC_SA_4 = "CC-BY-NC-SA-4.0"


@dataclass(frozen=True)
class PretrainedSource:
    """One downloadable checkpoint and the OmniEmbed model it converts into."""

    name: str
    """What users type: ``omniembed.load(name)``, ``--model name``."""
    url: str
    filename: str
    """The file's name in the download cache."""
    converter: str
    """A key of :data:`omniembed.pretrained.converters.CONVERTERS`."""
    licence: str
    """SPDX identifier of the weights' licence."""
    licence_url: str
    modalities: tuple[str, ...]
    embed_dim: int
    sha256: str | None = None
    """Published digest; None where the publisher gives none (see the module docstring)."""
    size: int | None = None
    """Published size in bytes; None where unpublished (the server's Content-Length still catches truncation)."""
    arguments: Mapping[str, Any] = field(default_factory=dict)
    """Converter arguments (ImageBind: its constructor arguments where they differ from ``imagebind_huge``)."""
    notice: str | None = None
    """Shown whenever the weights are converted or loaded (licence terms a user must know)."""
    verified: str = ""
    """How the conversion was checked, for ``omniembed models`` and the README."""
    description: str = ""

    def provenance(self, sha256: str) -> dict[str, Any]:
        """The record written as ``source.json`` beside the converted model."""
        return {"name": self.name, "url": self.url, "sha256": sha256,
                "sha256_published": self.sha256 is not None, "licence": self.licence,
                "licence_url": self.licence_url, "notice": self.notice, "description": self.description}


_SOURCES: dict[str, PretrainedSource] = {}


def register_source(source: PretrainedSource, replace: bool = False) -> PretrainedSource:
    """Add a source to the table (``replace=True`` to point an existing name elsewhere, e.g. a local mirror)."""
    if source.name in _SOURCES and not replace:
        raise ValueError(f"pretrained source '{source.name}' is already registered")
    _SOURCES[source.name] = source
    return source


def unregister_source(name: str) -> None:
    _SOURCES.pop(name, None)


def get_source(name: str) -> PretrainedSource:
    if name not in _SOURCES:
        raise UnknownSourceError(f"no pretrained source named '{name}' (known: {', '.join(sorted(_SOURCES))}; "
                                 f"or open_clip:ARCH/TAG, hf:ORG/REPO[@rev], a checkpoint directory)")
    return _SOURCES[name]


def is_source(name: str) -> bool:
    return name in _SOURCES


def list_sources() -> list[PretrainedSource]:
    return [_SOURCES[n] for n in sorted(_SOURCES)]


IMAGEBIND_NOTICE = ("ImageBind's weights (Meta AI) are licensed CC BY-NC-SA 4.0: non-commercial use only, "
                    "attribution required, derivatives under the same licence — "
                    "https://creativecommons.org/licenses/by-nc-sa/4.0/")

register_source(PretrainedSource(
    name="imagebind_huge",
    url="https://dl.fbaipublicfiles.com/imagebind/imagebind_huge.pth",
    filename="imagebind_huge.pth",
    converter="imagebind",
    licence=CC_BY_NC_SA_4,
    licence_url="https://github.com/facebookresearch/ImageBind/blob/main/LICENSE",
    modalities=("image", "text", "audio", "depth", "thermal", "imu", "video"),
    embed_dim=1024,
    sha256=None,  # Meta publishes no digest for this file (neither the repository nor the model card gives one)
    notice=IMAGEBIND_NOTICE,
    verified="converter reproduces ImageBind's reference outputs to 1e-4 on every modality (tiny random model "
             "of the same code, tests/test_convert_imagebind.py); full file: every tensor name and shape checked",
    description="ImageBind (Girdhar et al., CVPR 2023), ViT-H/14 image and OpenCLIP ViT-H text towers, frozen, "
                "with audio, depth, thermal and IMU bound to them; video through the image tower",
))
