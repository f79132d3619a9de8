"""A labelled evaluation folder, as ``omniembed eval`` reads it, written on the fly for the eval tests, and the
command's report on it."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from omniembed.cli import main
from omniembed.model import OmniEmbedModel

CLASS_NAMES = ["zero", "one", "two"]


def write_labelled_folder(root: Path, sidecars: Callable[[int, int], dict[str, str]]) -> Path:
    """Write ``root/data/test/NNNNN.png`` and ``.wav`` for six samples — sample i is class i % 3, a random 32×32
    RGB image and 0.5 s of 16 kHz noise (seeded, so every call writes the same files) — plus the text files
    ``sidecars(i, label)`` gives it (suffix → content, e.g. ``{".cls": "2"}``), and ``root/data/manifest.json``
    naming :data:`CLASS_NAMES`. Returns ``root/data``."""
    split = root / "data" / "test"
    split.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(6):
        label = i % len(CLASS_NAMES)
        Image.fromarray((rng.random((32, 32, 3)) * 255).astype(np.uint8)).save(split / f"{i:05d}.png")
        sf.write(split / f"{i:05d}.wav", rng.standard_normal(8000).astype(np.float32) * 0.1, 16000)
        for suffix, text in sidecars(i, label).items():
            (split / f"{i:05d}{suffix}").write_text(text)
    (root / "data" / "manifest.json").write_text(json.dumps({"class_names": CLASS_NAMES}))
    return root / "data"


def eval_report(capsys: pytest.CaptureFixture[str], model: OmniEmbedModel, workdir: Path, *args: str,
                training: dict | None = None) -> tuple[dict, Path]:
    """Save ``model`` to ``workdir/model`` (with ``training`` as its training record, ``training.json``, when
    given), run ``omniembed eval ARGS --model workdir/model --out workdir/report --json`` in this process and check
    it succeeds. Returns the JSON report it printed and the folder it wrote the report and plots to."""
    model_dir, out = workdir / "model", workdir / "report"
    model.save(model_dir)
    if training is not None:
        (model_dir / "training.json").write_text(json.dumps(training))
    assert main(["eval", *args, "--model", str(model_dir), "--out", str(out), "--json"]) == 0
    # the report, before the line that says where --out wrote it
    return json.loads(capsys.readouterr().out.split("\nreport and plots")[0]), out
