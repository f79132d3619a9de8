#!/usr/bin/env python
"""(recording, caption) pairs from the Free Spoken Digit Dataset, split by speaker, for the README's "Train your own".

    python examples/train_your_own/fsdd_pairs.py FSDD_RECORDINGS OUT [--heldout theo,yweweler]

FSDD_RECORDINGS holds ``{digit}_{speaker}_{index}.wav`` files. Writes:

    OUT/train.csv        key,audio,caption — one row per recording of a training speaker: its absolute path and a
                         caption drawn from CAPTIONS (seeded)
    OUT/heldout/         the held-out speakers' recordings as NAME.wav + NAME.cls (the digit): a labelled folder
                         for `omniembed eval`, with manifest.json naming the classes and the zero-shot prompts

Nothing here is specific to audio or digits: any (file, caption) table makes a manifest for `omniembed data shards`.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import re
import shutil
import sys
from pathlib import Path

DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
CAPTIONS = ("someone saying {name}", "the spoken word {name}", "a voice says {name}", "{name}",
            "a recording of the number {name}", "the digit {numeral}, spoken", "a person counting: {name}")
PROMPTS = ("the spoken digit {}", "someone saying {}", "{}")
NAME = re.compile(r"^(\d)_([A-Za-z]+)_(\d+)\.wav$")


def write_pairs(recordings: Path, out: Path, heldout: set[str], seed: int = 0) -> dict[str, int]:
    """Write OUT/train.csv and OUT/heldout/; returns {"train": rows, "heldout": recordings, "skipped": files}."""
    files = sorted(recordings.glob("*.wav"))
    if not files:
        raise SystemExit(f"fsdd_pairs: error: {recordings}: no .wav recordings")
    rng = random.Random(seed)
    (out / "heldout").mkdir(parents=True, exist_ok=True)
    counts = {"train": 0, "heldout": 0, "skipped": 0}
    rows = []
    for path in files:
        match = NAME.match(path.name)
        if match is None:
            counts["skipped"] += 1
            continue
        digit, speaker = int(match[1]), match[2]
        if speaker in heldout:
            shutil.copyfile(path, out / "heldout" / path.name)
            (out / "heldout" / f"{path.stem}.cls").write_text(f"{digit}\n")
            counts["heldout"] += 1
        else:
            caption = rng.choice(CAPTIONS).format(name=DIGITS[digit], numeral=digit)
            rows.append({"key": path.stem, "audio": str(path.resolve()), "caption": caption})
    with open(out / "train.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=["key", "audio", "caption"])
        writer.writeheader()
        writer.writerows(rows)
    counts["train"] = len(rows)
    (out / "heldout" / "manifest.json").write_text(json.dumps(
        {"class_names": list(DIGITS), "prompt_templates": list(PROMPTS),
         "heldout_speakers": sorted(heldout)}, indent=1) + "\n")
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("recordings", help="the folder of {digit}_{speaker}_{index}.wav files")
    parser.add_argument("out", help="output folder")
    parser.add_argument("--heldout", default="theo,yweweler", help="speakers kept out of training (comma-separated)")
    parser.add_argument("--seed", type=int, default=0, help="caption draws (default 0)")
    args = parser.parse_args(argv)
    counts = write_pairs(Path(args.recordings), Path(args.out), set(args.heldout.split(",")), args.seed)
    if not counts["heldout"] or not counts["train"]:
        print(f"fsdd_pairs: error: {counts['train']} training and {counts['heldout']} held-out recordings; "
              f"check --heldout against the speakers in {args.recordings}", file=sys.stderr)
        return 2
    print(f"{counts['train']} training pairs in {args.out}/train.csv, {counts['heldout']} held-out recordings in "
          f"{args.out}/heldout ({counts['skipped']} files skipped)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
