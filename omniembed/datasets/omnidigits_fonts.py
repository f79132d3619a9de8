"""OmniDigits ``fonts`` source: digits rendered from the system's fonts, print faces and handwriting fonts.

The fonts are the ones fontconfig lists as having the glyphs 0–9 and the Latin letters (``fc-list
':charset=30-39 41-5a 61-7a'``): Debian's fonts-dejavu, fonts-liberation, fonts-freefont-ttf, fonts-urw-base35,
fonts-noto-core give dozens of print faces; its handwriting fonts (fonts-dkg-handwriting, fonts-bwht,
fonts-humor-sans, fonts-comic-neue, fonts-breip, fonts-femkeklaver, fonts-ecolier-court, fonts-kristi,
fonts-dancingscript, fonts-kaushanscript) give hands, whose digits are closer to scans of handwriting (held out
of the anchor, seed 0, MNIST on all 10,000 images: 85.1 → 89.2 % with them). Picture fonts that claim those code
points are left out. Each (font, digit) is drawn :data:`RENDERS_PER_GLYPH` times with a seeded stroke thickening,
slant and width change, then normalised as MNIST was: the ink's bounding box scaled to fit 20 × 20 (aspect kept)
and its centre of mass put at the centre of a 28 × 28 canvas, white ink on black.

Split by font family (every style of a family falls on one side): families in name order, every third one (the
2nd, 5th, …) is test, so no typeface is in both splits. With fewer than two families, or no fc-list, the source
has nothing to split: :func:`font_images` raises :class:`~.omnidigits_sources.MissingToolError`.
"""

from __future__ import annotations

import shutil
import subprocess
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .omnidigits_sources import ImagePool, MissingToolError, Skipped, image_pool

FONT_QUERY = ":charset=30-39 41-5a 61-7a"
"""fontconfig pattern: fonts with the ten digit glyphs and the Latin letters (most symbol fonts fall out). Not
``:lang=en``: handwriting fonts that lack some English punctuation (Humor Sans, the Because We Had To set …) fail
it."""
FONT_SUFFIXES = (".ttf", ".otf", ".ttc")
PICTURE_FONTS = ("D050000L",)
"""Families fontconfig lists as covering Latin text whose code points for 0-9 draw pictures (URW's clone of ITC
Zapf Dingbats maps its symbols onto ASCII), so no digit could be learnt from them."""
RENDERS_PER_GLYPH = 3
DRAW_SIZE = 64
"""Pixel size the glyph is drawn at, before it is scaled down to fit :data:`BOX`."""
BOX, CANVAS = 20, 28
STROKE, SLANT_DEGREES, WIDTH_SCALE = (0, 1, 2), (-10.0, 10.0), (0.75, 1.25)
"""Random extra stroke width (pixels at DRAW_SIZE), rotation and horizontal scale of each render."""
TEST_EVERY = 3
FONTS_HINT = ("install fonts with e.g. `apt-get install fontconfig fonts-dejavu fonts-liberation fonts-freefont-ttf "
              "fonts-dkg-handwriting fonts-humor-sans`")


@dataclass(frozen=True)
class FontFile:
    """One font face: its file and the family and style fontconfig names."""

    path: str
    family: str
    style: str


def list_fonts() -> list[FontFile]:
    """The fonts fontconfig knows that cover Latin text and 0–9, one per (family, style), sorted."""
    exe = shutil.which("fc-list")
    if exe is None:
        raise MissingToolError(f"fc-list (fontconfig) is not on PATH; the fonts source lists fonts with it: "
                               f"{FONTS_HINT}")
    done = subprocess.run([exe, FONT_QUERY, "file", "family", "style"], capture_output=True, text=True, timeout=60)
    faces: dict[tuple[str, str], FontFile] = {}
    for line in done.stdout.splitlines():
        path, _, rest = line.partition(": ")
        fields = dict(part.split("=", 1) for part in rest.split(":") if "=" in part)
        family = rest.split(":")[0].split(",")[0].strip()
        style = fields.get("style", "").split(",")[0].strip()
        if Path(path).suffix.lower() in FONT_SUFFIXES and family and family not in PICTURE_FONTS:
            faces.setdefault((family, style), FontFile(path, family, style))
    return [faces[k] for k in sorted(faces)]


def font_images(fonts: list[FontFile] | None = None) -> ImagePool:
    """Every digit of every font in ``fonts`` (default :func:`list_fonts`) drawn ``RENDERS_PER_GLYPH`` times,
    split by family (see the module docstring). A font that cannot be read is skipped and listed."""
    fonts = list_fonts() if fonts is None else fonts
    families = sorted({f.family for f in fonts})
    if len(families) < 2:
        raise MissingToolError(f"the fonts source needs at least two font families to split by family, found "
                               f"{len(families)}: {FONTS_HINT}")
    test_families = set(families[1::TEST_EVERY])
    pixels, labels, ids, is_test, skipped = [], [], [], [], []
    for font in fonts:
        try:
            glyphs = [render_digit(font.path, digit, _font_rng(font, digit, k))
                      for digit in range(10) for k in range(RENDERS_PER_GLYPH)]
        except OSError as exc:  # PIL's error for a font file it cannot read
            skipped.append(Skipped(font.path, f"cannot read the font ({exc})"))
            continue
        for i, glyph in enumerate(glyphs):
            digit, k = divmod(i, RENDERS_PER_GLYPH)
            pixels.append(glyph)
            labels.append(digit)
            ids.append(f"fonts:{font.family}/{font.style}/{digit}/{k}")
            is_test.append(font.family in test_families)
    if not pixels:
        raise MissingToolError(f"no font could be read ({skipped[0].reason if skipped else 'none listed'})")
    rule = (f"fonts by family: test = {', '.join(sorted(test_families))}; "
            f"train = {', '.join(f for f in families if f not in test_families)}")
    pool = image_pool("fonts", rule, np.stack(pixels), np.asarray(labels, np.int64), ids, np.asarray(is_test))
    pool.skipped[:0] = skipped
    return pool


def _font_rng(font: FontFile, digit: int, take: int) -> np.random.Generator:
    """A generator that depends only on the face and glyph, so the source is the same on every build."""
    return np.random.default_rng([zlib.crc32(f"{font.family}/{font.style}".encode()), digit, take])


def render_digit(font_path: str, digit: int, rng: np.random.Generator) -> np.ndarray:
    """``digit`` in the font at ``font_path`` → uint8 ``[28, 28]`` (MNIST's framing; see the module docstring)."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.truetype(font_path, DRAW_SIZE)
    stroke = int(rng.choice(STROKE))
    canvas = Image.new("L", (3 * DRAW_SIZE, 3 * DRAW_SIZE), 0)
    ImageDraw.Draw(canvas).text((DRAW_SIZE, DRAW_SIZE), str(digit), fill=255, font=font, stroke_width=stroke,
                                stroke_fill=255)
    canvas = canvas.rotate(float(rng.uniform(*SLANT_DEGREES)), resample=Image.Resampling.BICUBIC)
    box = canvas.getbbox()
    if box is None:
        raise OSError(f"the glyph '{digit}' draws no ink")
    glyph = canvas.crop(box)
    w, h = glyph.size
    w = max(1, round(w * rng.uniform(*WIDTH_SCALE)))
    scale = BOX / max(w, h)
    glyph = glyph.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.LANCZOS)
    return _centre_of_mass_framed(np.asarray(glyph))


def _centre_of_mass_framed(glyph: np.ndarray) -> np.ndarray:
    """uint8 ``[h, w]`` (h, w ≤ BOX) → uint8 ``[CANVAS, CANVAS]`` with the ink's centre of mass at the centre."""
    out = np.zeros((CANVAS, CANVAS), np.uint8)
    h, w = glyph.shape
    mass = glyph.astype(np.float64)
    cy = (mass.sum(axis=1) @ np.arange(h)) / mass.sum()
    cx = (mass.sum(axis=0) @ np.arange(w)) / mass.sum()
    top = int(np.clip(round((CANVAS - 1) / 2 - cy), 0, CANVAS - h))
    left = int(np.clip(round((CANVAS - 1) / 2 - cx), 0, CANVAS - w))
    out[top:top + h, left:left + w] = glyph
    return out
