"""Which OmniDigits sources a build draws from, loaded: image pools, audio pools and point-cloud recipes.

A build's ``source`` names a set of sources:

* ``"shared"`` — MNIST and FSDD from the shared data root, clouds by ``lift-slab``;
* ``"offline"`` — scikit-learn digits and espeak-ng's default voices, clouds by ``lift-slab``;
* ``"all"`` — every source at hand: MNIST and FSDD when the data root holds them, scikit-learn digits, the
  system's fonts, every synthesised speech source of :data:`~.omnidigits_speech.SPEECH_SOURCES` (espeak-ng's and
  flite's voices), every lifting recipe of :data:`~.omnidigits_lifts.LIFT_RECIPES`. A source that cannot be made
  here (no fonts, no espeak-ng, no flite) is left
  out and listed in ``skipped``; a kind left with no source at all is an error.

Every source has a unique name (``mnist``, ``fonts``, ``espeak-ng-whisper``, ``lift-deep`` …): the name a sample's
files are tagged with, and the name leave-one-source-out holds out.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError
from .omnidigits_lifts import DEFAULT_LIFT, LIFT_RECIPES
from .omnidigits_sources import (AudioPool, ImagePool, MissingToolError, Skipped, fsdd_recordings, mnist_images,
                                 sklearn_images)
from .omnidigits_speech import SPEECH_SOURCES, synthesised_recordings

IMAGE_SOURCES = ("mnist", "sklearn-digits", "fonts")
AUDIO_SOURCES = ("fsdd", *SPEECH_SOURCES)
CLOUD_SOURCES = tuple(LIFT_RECIPES)
KIND_OF_SOURCE = {**{s: "image" for s in IMAGE_SOURCES}, **{s: "audio" for s in AUDIO_SOURCES},
                  **{s: "pointcloud" for s in CLOUD_SOURCES}}
"""Every source name → the kind of input it gives: image (scans or renders), audio (recordings), pointcloud
(a lifting recipe)."""


@dataclass
class SourcePools:
    """The loaded sources of a build: ``images`` and ``audio`` pools, ``lifts`` (recipe names), and what could not
    be made (``skipped``: unavailable sources and bad files)."""

    images: list[ImagePool] = field(default_factory=list)
    audio: list[AudioPool] = field(default_factory=list)
    lifts: list[str] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)

    def names(self) -> dict[str, list[str]]:
        """{kind: source names}, kinds without a source left out."""
        named = {"image": [p.name for p in self.images], "audio": [p.name for p in self.audio],
                 "pointcloud": list(self.lifts)}
        return {kind: names for kind, names in named.items() if names}

    def without(self, excluded: set[str]) -> "SourcePools":
        """These pools less the ``excluded`` sources; :class:`ConfigError` when that leaves a kind with none."""
        kept = SourcePools([p for p in self.images if p.name not in excluded],
                           [p for p in self.audio if p.name not in excluded],
                           [name for name in self.lifts if name not in excluded], self.skipped)
        for kind, names in self.names().items():
            if not kept.names().get(kind):
                raise ConfigError(f"omnidigits: leaving out {', '.join(sorted(excluded))} leaves no {kind} source "
                                  f"(this build has only {', '.join(names)})")
        return kept


def load_pools(source: str, root: Path | None, needs_images: bool, needs_audio: bool, needs_clouds: bool,
               seed: int, workers: int) -> SourcePools:
    """The pools of ``source`` ("shared" | "offline" | "all"; see the module docstring) that the modalities
    being built need."""
    pools = SourcePools()
    if source == "shared":
        pools.images = [mnist_images(root / "mnist")] if needs_images else []
        pools.audio = [fsdd_recordings(root / "fsdd")] if needs_audio else []
    elif source == "offline":
        pools.images = [sklearn_images()] if needs_images else []
        pools.audio = [synthesised_recordings(seed, workers)] if needs_audio else []
    else:
        if needs_images:
            pools.images = _available(_image_loaders(root), pools.skipped)
        if needs_audio:
            pools.audio = _available(_audio_loaders(root, seed, workers), pools.skipped)
        if (needs_images and not pools.images) or (needs_audio and not pools.audio):
            kind = "image" if needs_images and not pools.images else "audio"
            raise MissingToolError(f"omnidigits: no {kind} source could be made: "
                                   + "; ".join(f"{s.source}: {s.reason}" for s in pools.skipped))
    if needs_clouds:
        pools.lifts = list(CLOUD_SOURCES) if source == "all" else [DEFAULT_LIFT]
    pools.skipped += [s for pool in (*pools.images, *pools.audio) for s in pool.skipped]
    return pools


def _image_loaders(root: Path | None) -> dict:
    from . import omnidigits_fonts

    loaders = {"sklearn-digits": sklearn_images, "fonts": lambda: _font_pool(tuple(omnidigits_fonts.list_fonts()))}
    if root is not None and (root / "mnist").is_dir():
        loaders = {"mnist": lambda: mnist_images(root / "mnist"), **loaders}
    return loaders


def _audio_loaders(root: Path | None, seed: int, workers: int) -> dict:
    loaders = {name: (lambda name=name: _speech_pool(seed, workers, name)) for name in SPEECH_SOURCES}
    if root is not None and (root / "fsdd").is_dir():
        loaders = {"fsdd": lambda: fsdd_recordings(root / "fsdd"), **loaders}
    return loaders


# The synthesised sources are pure functions of their arguments (and the fonts and synthesisers installed), and
# leave-one-source-out builds them once per fold: synthesising ~900 words and rendering ~3,000 glyphs again each
# time would cost minutes. Read sources (MNIST, FSDD, scikit-learn) are read afresh, so edits to them are seen.
_speech_pool = functools.lru_cache(maxsize=len(SPEECH_SOURCES))(synthesised_recordings)


@functools.lru_cache(maxsize=1)
def _font_pool(fonts: tuple) -> ImagePool:
    from .omnidigits_fonts import font_images

    return font_images(list(fonts))


def _available(loaders: dict, skipped: list[Skipped]) -> list:
    """Each loader's pool; one whose tool is missing is left out and listed in ``skipped``."""
    pools = []
    for name, load in loaders.items():
        try:
            pools.append(load())
        except MissingToolError as exc:
            skipped.append(Skipped(f"source {name}", str(exc)))
    return pools


def check_source_names(names: list[str] | tuple[str, ...]) -> None:
    """:class:`ConfigError` for a name that is no OmniDigits source, listing the known ones."""
    unknown = [n for n in names if n not in KIND_OF_SOURCE]
    if unknown:
        raise ConfigError(f"omnidigits: {', '.join(unknown)} is not a source; sources are "
                          f"{', '.join(KIND_OF_SOURCE)}")
