"""One pixel limit for every image file OmniEmbed decodes (image, depth, thermal), checked from the header.

A 1 MB PNG can declare 20000 × 20000 pixels and take 2 GB to decode (a decompression bomb). Each image loader
calls :func:`check_image_file` first: PIL reads only the header (size, mode), and an image over the limit raises
:class:`~omniembed.errors.TooManyPixelsError` — an input error, so ``on_error="skip"`` skips that file and
batch jobs keep the rest. The limit is :func:`max_image_pixels`: :func:`set_max_image_pixels` in this process,
else the environment variable ``OMNIEMBED_MAX_IMAGE_PIXELS`` (a count, or ``none``), else PIL's default
``Image.MAX_IMAGE_PIXELS`` (89,478,485: a quarter GiB of RGB). PIL itself refuses a header over twice its own
``Image.MAX_IMAGE_PIXELS``; a limit above that needs PIL's raised as well.
"""

from __future__ import annotations

import contextlib
import os
import re
import warnings
from pathlib import Path
from typing import Iterator

from PIL import Image, UnidentifiedImageError

from omniembed.errors import ConfigError, TooManyPixelsError, UnreadableInputError

DEFAULT_MAX_PIXELS = 89_478_485
"""PIL's ``Image.MAX_IMAGE_PIXELS`` default (1024 · 1024 · 1024 // 4 // 3)."""
ENV_VAR = "OMNIEMBED_MAX_IMAGE_PIXELS"
_UNSET = object()
_limit: object = _UNSET


def set_max_image_pixels(limit: int | None) -> None:
    """Set the pixel limit (width · height) of every image file read in this process; ``None`` removes it."""
    global _limit
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise ConfigError(f"max image pixels must be a positive integer or None, got {limit!r}")
    _limit = limit


def max_image_pixels() -> int | None:
    """The limit in force: :func:`set_max_image_pixels`, else ``$OMNIEMBED_MAX_IMAGE_PIXELS``, else PIL's default."""
    if _limit is not _UNSET:
        return _limit  # type: ignore[return-value]
    text = os.environ.get(ENV_VAR, "").strip()
    if not text:
        return DEFAULT_MAX_PIXELS
    if text.lower() == "none":
        return None
    if not text.isdigit() or int(text) < 1:
        raise ConfigError(f"{ENV_VAR}={text!r} is not a positive pixel count or 'none'")
    return int(text)


def check_pixels(source: str, width: int, height: int) -> None:
    """Raise :class:`TooManyPixelsError` naming ``source`` when ``width · height`` is over the limit."""
    limit = max_image_pixels()
    if limit is not None and width * height > limit:
        raise TooManyPixelsError(source, f"image is {width} × {height} = {width * height:,} pixels, over the limit "
                                         f"of {limit:,} (a decompression bomb?); {HOW_TO_RAISE}")


HOW_TO_RAISE = f"a larger limit: {ENV_VAR} or omniembed.modalities.pixel_limit.set_max_image_pixels"


def check_image_file(path: Path, unreadable: str) -> None:
    """Read ``path``'s header only and check its size against the limit; a header PIL cannot read raises
    :class:`UnreadableInputError` with the reason ``"{unreadable} ({PIL's error})"``."""
    try:
        with quiet_pil(), Image.open(path) as im:
            width, height = im.size
    except Image.DecompressionBombError as exc:  # over twice PIL's own limit: PIL refuses and keeps the size
        declared = re.search(r"\((\d+) pixels\)", str(exc))
        size = f"{int(declared.group(1)):,} pixels" if declared else "too many pixels"
        raise TooManyPixelsError(str(path), f"image is {size}, over twice PIL's Image.MAX_IMAGE_PIXELS "
                                            f"({Image.MAX_IMAGE_PIXELS:,}), which PIL refuses to open (a "
                                            f"decompression bomb?); {HOW_TO_RAISE}, and PIL's") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise UnreadableInputError(str(path), f"{unreadable} ({exc})") from exc
    check_pixels(str(path), width, height)


@contextlib.contextmanager
def quiet_pil() -> Iterator[None]:
    """PIL warns of a possible bomb above its own limit; within OmniEmbed's limit that warning is noise."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        yield
