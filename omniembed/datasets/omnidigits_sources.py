"""OmniDigits sources: handwritten digit images and spoken digits, each with its leak-free train/test split.

Images (uint8 ``[N, 28, 28]``, white ink on black, as MNIST):

* **MNIST test set** (``mnist/t10k-*-ubyte.gz``, IDX format). It has no writer ids, but its two halves come from
  different writer populations: images 0–4999 from NIST SD-3 (Census Bureau employees), 5000–9999 from SD-1
  (high-school students). Train draws from the first half, test from the second, so no writer is in both.
* **scikit-learn digits** (``load_digits``: 1,797 real 8 × 8 scans, UCI optdigits, stored in writer blocks),
  smoothly upsampled to 20 × 20 and centred in 28 × 28 as MNIST is. Split by index range: train 0–1379, test
  1380–1796 (writer boundaries are not published, so one writer's block may straddle the cut; no scan is shared).

Recordings (float32 ``[T]`` mono):

* **FSDD** (``fsdd/recordings/{digit}_{speaker}_{index}.wav``, 8 kHz, 6 speakers), split by speaker: theo and
  yweweler are held out for test, every other speaker is train.
* **synthesised speech** (:mod:`.omnidigits_speech`): espeak-ng's and flite's voices, split by voice.

Digits rendered from fonts are a third image source (:mod:`.omnidigits_fonts`).

Bad source files (undecodable, misnamed, wrong rate, silent, blank images) are skipped and listed in ``skipped``.
"""

from __future__ import annotations

import gzip
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import MissingInputError, OmniEmbedError, UnreadableInputError
from ..extras import require

SPLITS = ("train", "test")
DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")

MNIST_IMAGES, MNIST_LABELS = "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"
MNIST_TEST_START = 5000
"""First MNIST test-set index drawn for the OmniDigits test split (the NIST SD-1 half)."""
SKLEARN_TEST_START = 1380
"""First ``load_digits`` index drawn for the OmniDigits test split."""
MIN_INK_PIXELS = 12
"""An image with fewer pixels above half its peak is blank or a speck: skipped (no point cloud can be made)."""

FSDD_RATE = 8000
FSDD_TEST_SPEAKERS = ("theo", "yweweler")
FSDD_NAME = re.compile(r"^(\d)_([A-Za-z]+)_(\d+)\.wav$")
MIN_RECORDING_SECONDS = 0.05

class MissingToolError(OmniEmbedError, RuntimeError):
    """An external program a dataset builder needs is not installed."""


@dataclass(frozen=True)
class Skipped:
    """A source file (or synthesis call) left out, and why."""

    source: str
    reason: str


@dataclass
class ImagePool:
    """Digit images of one source: ``pixels`` uint8 ``[N, 28, 28]``, ``labels`` int ``[N]``, ``ids`` names,
    ``splits`` {split: indices into the pool}."""

    name: str
    split_rule: str
    pixels: np.ndarray
    labels: np.ndarray
    ids: list[str]
    splits: dict[str, np.ndarray]
    skipped: list[Skipped] = field(default_factory=list)


@dataclass
class AudioPool:
    """Spoken digits of one source: ``waves`` float32 ``[T]`` each at ``sample_rate`` Hz, ``labels``, ``ids``,
    ``splits`` {split: indices}; ``synthetic`` pools get noise added by the renderer."""

    name: str
    split_rule: str
    sample_rate: int
    waves: list[np.ndarray]
    labels: np.ndarray
    ids: list[str]
    splits: dict[str, np.ndarray]
    synthetic: bool
    skipped: list[Skipped] = field(default_factory=list)


# ---- images -------------------------------------------------------------------------------------------------------
def mnist_images(root: Path) -> ImagePool:
    """The MNIST test set under ``root`` (the ``mnist`` folder), split by half (see the module docstring)."""
    pixels = _read_idx(root / MNIST_IMAGES, magic=0x803, dims=3)
    labels = _read_idx(root / MNIST_LABELS, magic=0x801, dims=1).astype(np.int64)
    if len(pixels) != len(labels) or pixels.shape[1:] != (28, 28):
        raise UnreadableInputError(str(root), f"{len(pixels)} images of {pixels.shape[1:]} but {len(labels)} labels")
    ids = [f"mnist-t10k:{i:05d}" for i in range(len(labels))]
    rule = (f"MNIST test set by writer population: train = images 0-{MNIST_TEST_START - 1} (NIST SD-3, Census "
            f"Bureau employees), test = images {MNIST_TEST_START}-{len(labels) - 1} (NIST SD-1, students)")
    return image_pool("mnist", rule, pixels, labels, ids, np.arange(len(labels)) >= MNIST_TEST_START)


def sklearn_images() -> ImagePool:
    """scikit-learn's bundled 8 × 8 digit scans, upsampled to 28 × 28, split by index range."""
    from PIL import Image

    load_digits = require("sklearn.datasets", "the offline OmniDigits images (scikit-learn digits)").load_digits

    digits = load_digits()
    pixels = np.zeros((len(digits.images), 28, 28), np.uint8)
    for i, scan in enumerate(digits.images):  # values 0..16
        small = Image.fromarray(np.round(scan * (255 / 16)).astype(np.uint8))
        pixels[i, 4:24, 4:24] = np.asarray(small.resize((20, 20), Image.Resampling.BICUBIC))
    ids = [f"sklearn-digits:{i:04d}" for i in range(len(pixels))]
    rule = (f"scikit-learn digits by index range (scans are stored in writer blocks): train = 0-"
            f"{SKLEARN_TEST_START - 1}, test = {SKLEARN_TEST_START}-{len(pixels) - 1}")
    return image_pool("sklearn-digits", rule, pixels, digits.target.astype(np.int64), ids,
                      np.arange(len(pixels)) >= SKLEARN_TEST_START)


def image_pool(name: str, rule: str, pixels: np.ndarray, labels: np.ndarray, ids: list[str],
               is_test: np.ndarray) -> ImagePool:
    """A pool of uint8 ``[N, 28, 28]`` images split by the bool ``[N]`` ``is_test``; blank images skipped."""
    ink = (pixels > pixels.max(axis=(1, 2), keepdims=True) // 2).sum(axis=(1, 2))
    good = ink >= MIN_INK_PIXELS
    skipped = [Skipped(ids[i], f"only {ink[i]} ink pixels (fewer than {MIN_INK_PIXELS})")
               for i in np.flatnonzero(~good)]
    index = np.arange(len(pixels))
    splits = {"train": index[good & ~is_test], "test": index[good & is_test]}
    return ImagePool(name, rule, pixels, labels, ids, splits, skipped)


def _read_idx(path: Path, magic: int, dims: int) -> np.ndarray:
    """A gzipped IDX file (big-endian magic, ``dims`` big-endian uint32 sizes, then uint8 data)."""
    if not path.is_file():
        raise MissingInputError(str(path), "MNIST file not found")
    try:
        data = gzip.decompress(path.read_bytes())
    except (OSError, EOFError) as exc:
        raise UnreadableInputError(str(path), f"not a readable gzip file ({exc})") from None
    header = 4 + 4 * dims
    if len(data) < header or int.from_bytes(data[:4], "big") != magic:
        raise UnreadableInputError(str(path), f"not an IDX file with magic {magic:#06x}")
    shape = tuple(int.from_bytes(data[4 + 4 * k: 8 + 4 * k], "big") for k in range(dims))
    if len(data) - header != int(np.prod(shape)):
        raise UnreadableInputError(str(path), f"holds {len(data) - header} bytes of data, its header says {shape}")
    return np.frombuffer(data, np.uint8, offset=header).reshape(shape)


# ---- recordings ---------------------------------------------------------------------------------------------------
def fsdd_recordings(root: Path) -> AudioPool:
    """The Free Spoken Digit Dataset under ``root`` (``fsdd`` or its ``recordings`` folder), split by speaker."""
    import soundfile as sf

    folder = root / "recordings" if (root / "recordings").is_dir() else root
    files = sorted(folder.glob("*.wav"))
    if not files:
        raise MissingInputError(str(folder), "no FSDD recordings (*.wav) found")
    waves, labels, ids, speakers, skipped = [], [], [], [], []
    for path in files:
        match = FSDD_NAME.match(path.name)
        if match is None:
            skipped.append(Skipped(str(path), "name is not {digit}_{speaker}_{index}.wav"))
            continue
        try:
            wave, rate = sf.read(path, dtype="float32", always_2d=True)
        except (RuntimeError, OSError) as exc:  # soundfile raises LibsndfileError (a RuntimeError)
            skipped.append(Skipped(str(path), f"cannot decode ({exc})"))
            continue
        reason = _bad_recording(wave.mean(axis=1), rate, FSDD_RATE)
        if reason:
            skipped.append(Skipped(str(path), reason))
            continue
        waves.append(np.ascontiguousarray(wave.mean(axis=1)))
        labels.append(int(match[1]))
        speakers.append(match[2])
        ids.append(f"fsdd:{path.stem}")
    held_out = np.isin(speakers, FSDD_TEST_SPEAKERS)
    index = np.arange(len(waves))
    rule = (f"FSDD by speaker: test = {', '.join(FSDD_TEST_SPEAKERS)}; train = "
            f"{', '.join(sorted(set(speakers) - set(FSDD_TEST_SPEAKERS)))}")
    return AudioPool("fsdd", rule, FSDD_RATE, waves, np.asarray(labels, np.int64), ids,
                     {"train": index[~held_out], "test": index[held_out]}, synthetic=False, skipped=skipped)


def _bad_recording(wave: np.ndarray, rate: int, expected_rate: int) -> str | None:
    if rate != expected_rate:
        return f"sample rate {rate} Hz, expected {expected_rate} Hz"
    if len(wave) < MIN_RECORDING_SECONDS * rate:
        return f"{len(wave) / rate * 1000:.0f} ms long, shorter than {MIN_RECORDING_SECONDS * 1000:.0f} ms"
    if not np.isfinite(wave).all() or np.abs(wave).max() == 0:
        return "silent or not finite"
    return None
