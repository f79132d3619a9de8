"""Re-scan a labelled digit folder the ways other collections scan digits, to stress-test a model's zero-shot.

Reads every ``STEM.png`` with its ``STEM.cls`` label in ``SRC`` (an OmniDigits split such as ``omnidigits/test``:
light ink on dark) and writes, under ``OUT``, one labelled folder per variant that ``omniembed eval`` reads::

    low16/       the scan resampled to 16 × 16
    usps16/      the ink box fitted into 16 × 16, aspect kept, grey (USPS-like: the digit fills the frame)
    semeion16/   the ink box stretched to 16 × 16, aspect lost, binarised (Semeion-like)
    usps16_inv/  usps16 as dark ink on light paper
    clouds16/    point clouds lifted from usps16 by another lifter than OmniDigits' (see :func:`lift`)

    python tools/scan_variants.py omnidigits/test stress/
    omniembed eval stress/usps16 --model runs/omnidigits/model --classes zero,one,two,three,four,five,six,seven,eight,nine

The variants are a stress test, not a held-out source: the writers are the same, only the scanning changes.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from omniembed.datasets import omnidigits_render
from omniembed.errors import MissingInputError, UnreadableInputError

SIDE = 16
INK_LEVEL = 0.5
"""Share of a scan's peak above which a pixel is ink (its box, the binarisation threshold, the lifted pixels)."""
POINTS, MAX_TURN_DEGREES = 1536, 30.0


def ink_box(pixels: np.ndarray, source: str) -> np.ndarray:
    """uint8 ``[H, W]`` → the rows and columns that hold ink; UnreadableInputError naming ``source`` if none."""
    ys, xs = np.nonzero(pixels > INK_LEVEL * max(1, int(pixels.max())))
    if len(xs) == 0:
        raise UnreadableInputError(source, "has no ink to re-scan")
    return pixels[ys.min():ys.max() + 1, xs.min():xs.max() + 1]


def variants(pixels: np.ndarray, source: str) -> dict[str, np.ndarray]:
    """uint8 ``[H, W]`` light-on-dark scan → {variant: uint8 ``[16, 16]``} (see the module docstring)."""
    box = ink_box(pixels, source)
    h, w = box.shape
    scale = SIDE / max(h, w)
    fitted = Image.fromarray(box).resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.LANCZOS)
    usps = Image.new("L", (SIDE, SIDE))
    usps.paste(fitted, ((SIDE - fitted.width) // 2, (SIDE - fitted.height) // 2))
    stretched = np.asarray(Image.fromarray(box).resize((SIDE, SIDE), Image.BILINEAR))
    semeion = np.where(stretched > INK_LEVEL * max(1, int(stretched.max())), 255, 0).astype(np.uint8)
    low = np.asarray(Image.fromarray(pixels).resize((SIDE, SIDE), Image.LANCZOS))
    return {"low16": low, "usps16": np.asarray(usps), "semeion16": semeion, "usps16_inv": 255 - np.asarray(usps)}


def rescan_folder(src: Path, out: Path, depth: float = 0.4, seed: int = 0) -> dict[str, int]:
    """Write every variant of every labelled PNG of ``src`` under ``out``; {variant: files written}. Unreadable or
    blank scans are skipped and named on the way (the rest is written)."""
    scans = sorted(p for p in src.glob("*.png") if p.with_suffix(".cls").is_file())
    if not scans:
        raise MissingInputError(str(src), "holds no STEM.png with a STEM.cls label")
    counts: dict[str, int] = {}
    for i, path in enumerate(scans):
        try:
            with Image.open(path) as image:
                pixels = np.asarray(image.convert("L"))
            made = variants(pixels, str(path))
        except (OSError, UnreadableInputError) as exc:
            print(f"skipped {path}: {exc}")
            continue
        for name, image in made.items():
            write_labelled(out / name / path.name, path, lambda target: Image.fromarray(image).save(target))
            counts[name] = counts.get(name, 0) + 1
        points = lift(made["usps16"], depth, np.random.default_rng([seed, i]))
        write_labelled(out / "clouds16" / path.with_suffix(".ply").name, path,
                       lambda target: omnidigits_render.write_ply(target, points))
        counts["clouds16"] = counts.get("clouds16", 0) + 1
    return counts


def lift(pixels: np.ndarray, depth: float, rng: np.random.Generator, n: int = POINTS) -> np.ndarray:
    """uint8 ``[h, w]`` → float32 ``[n, 3]``: another lifter than OmniDigits' — every ink pixel equally likely
    (not weighted by ink), a slab ``depth`` thick, turned about the vertical axis only (up to
    :data:`MAX_TURN_DEGREES`), x/y spanning [-1, 1] over the frame."""
    ys, xs = np.nonzero(pixels > INK_LEVEL * max(1, int(pixels.max())))
    pick = rng.integers(0, len(xs), n)
    half = (max(pixels.shape) - 1) / 2
    x = (xs[pick] + rng.uniform(-0.5, 0.5, n) - half) / half
    y = -(ys[pick] + rng.uniform(-0.5, 0.5, n) - half) / half   # rows grow downwards, y upwards
    z = rng.uniform(-depth / 2, depth / 2, n)
    turn = np.radians(rng.uniform(-MAX_TURN_DEGREES, MAX_TURN_DEGREES))
    x, z = x * np.cos(turn) + z * np.sin(turn), -x * np.sin(turn) + z * np.cos(turn)
    return np.stack([x, y, z], axis=1).astype(np.float32)


def write_labelled(target: Path, scan: Path, write) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    write(target)
    shutil.copyfile(scan.with_suffix(".cls"), target.with_suffix(".cls"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("src", type=Path, help="labelled folder: STEM.png + STEM.cls (light ink on dark)")
    parser.add_argument("out", type=Path, help="folder for the variants (one sub-folder each)")
    parser.add_argument("--depth", type=float, default=0.4, help="slab depth of the lifted clouds, in units of "
                                                                  "half the frame (OmniDigits lifts 0.15)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for name, count in rescan_folder(args.src, args.out, args.depth, args.seed).items():
        print(f"{name:<11} {count} files in {args.out / name}")


if __name__ == "__main__":
    main()
