"""The model card (``README.md``) of a checkpoint directory, in the Hugging Face Hub's format: YAML metadata
(library, licence, tags) then modalities and sizes, the embedding dimension, the source weights and their
licence (``source.json``), the training recipe and data (``training.json``) and the evaluation report
(``eval/report.md`` or ``report.md``) where the directory has them.

Rendered from the directory's files alone (the weights' header is read for parameter counts, no tensor is
loaded), so ``omniembed push`` can write one for any checkpoint directory.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from safetensors import safe_open

from .io import atomic_path
from .provenance import read_source

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
TRAINING_FILE = "training.json"
"""Written beside a model exported by the trainer: the modality pairs it was trained on (for emergent flags)."""
CARD_FILE = "README.md"
"""A model folder's files that the card reads or is (the model writes them: :mod:`omniembed.model`)."""
CARD_MARKER = "<!-- model card written by omniembed; a README.md without this line is the user's and is kept -->"
SHARED_ENCODERS = "0 (runs other modalities' encoders)"
EXAMPLES = {"text": '"a photo of a dog"', "image": '"dog.jpg"', "audio": '"bark.wav"', "video": '"walk.mp4"',
            "pointcloud": '"chair.ply"'}
STAGE_KEYS = ("pairs", "datasets", "steps", "init", "from")
"""training.json fields the stage line itself shows."""
EVAL_REPORTS = ("eval/report.md", "report.md")
"""Where an evaluation report (``omniembed eval --out``) is looked for, relative to the directory."""


def write_model_card(directory: str | os.PathLike, repo_id: str | None = None) -> Path:
    """Render the card of ``directory`` and write it (atomically) as ``directory/README.md``, unless the
    directory holds a README.md a person wrote (one without :data:`CARD_MARKER`)."""
    path = Path(directory) / CARD_FILE
    if is_hand_written(path):
        return path
    with atomic_path(path) as tmp:
        tmp.write_text(render_model_card(directory, repo_id))
    return path


def is_hand_written(path: Path) -> bool:
    """Whether ``path`` is a README a person wrote (one without :data:`CARD_MARKER`), which is never replaced."""
    return path.is_file() and CARD_MARKER not in path.read_text(errors="replace")


def render_model_card(directory: str | os.PathLike, repo_id: str | None = None) -> str:
    """The card's Markdown; ``repo_id`` (ORG/REPO) goes into the usage example when known."""
    directory = Path(directory)
    config = json.loads((directory / CONFIG_FILE).read_text())
    source = read_source(directory)
    training = _read_json(directory / TRAINING_FILE)
    counts = parameter_counts(directory / WEIGHTS_FILE)
    modalities = list(config.get("modalities", {}))
    licence = (source or {}).get("licence")
    name = config.get("name") or directory.name
    lines = ["---", "library_name: omniembed", f"license: {licence.lower() if licence else 'unknown'}",
             "tags:", "- omniembed", "- multimodal", "- embeddings", *[f"- {m}" for m in modalities],
             "pipeline_tag: feature-extraction", "---", CARD_MARKER, "", f"# {name}", "",
             f"An OmniEmbed model: {', '.join(modalities)} embedded into "
             f"one {config.get('embed_dim')}-dimensional space (unit vectors), aligned to the "
             f"**{config.get('anchor')}** encoder.", "",
             "```python", "import omniembed", "",
             f'model = omniembed.load("hf:{repo_id or "ORG/REPO"}")'
             + ("" if repo_id else "   # or this directory's path"),
             f"vectors = model.embed([{', '.join(EXAMPLES[m] for m in modalities if m in EXAMPLES)}])"
             "   # one unit row per input", "```", "",
             "## Modalities", "", "| modality | parameters |", "|---|---|"]
    lines += [f"| {m} | {_millions(counts[m]) if counts.get(m) else SHARED_ENCODERS} |" for m in modalities]
    lines += [f"| **total** | {_millions(sum(counts.values()))} |", ""]
    lines += _source_section(source)
    lines += _training_section(training)
    lines += _eval_section(directory)
    return "\n".join(lines).rstrip() + "\n"


def parameter_counts(weights: Path) -> dict[str, int]:
    """{modality: number of weights} from the safetensors header (``encoders.<modality>.…`` keys)."""
    counts: dict[str, int] = {}
    if not weights.is_file():
        return counts
    with safe_open(str(weights), framework="pt") as f:
        for key in f.keys():
            parts = key.split(".")
            if parts[0] == "encoders" and len(parts) > 1:
                n = 1
                for d in f.get_slice(key).get_shape():
                    n *= d
                counts[parts[1]] = counts.get(parts[1], 0) + n
    return counts


def _source_section(source: dict[str, Any] | None) -> list[str]:
    lines = ["## Source weights and licence", ""]
    if source is None:
        return lines + ["No source record (`source.json`): the weights were initialised or trained with OmniEmbed; "
                        "their licence is that of the initial weights and training data (see Training).", ""]
    lines.append(f"- source: `{source.get('name')}` — {source.get('url')}")
    if source.get("sha256"):
        how = ("published" if source.get("sha256_published")
               else "computed from the file; no published digest to compare with")
        lines.append(f"- sha256 of the original file: `{source['sha256']}` ({how})")
    if source.get("licence"):
        lines.append(f"- licence: **{source['licence']}** ({source.get('licence_url') or 'see the source'})")
    if source.get("description"):
        lines.append(f"- {source['description']}")
    if source.get("notice"):
        lines += ["", f"> {source['notice']}"]
    return lines + [""]


def _training_section(training: dict[str, Any] | None) -> list[str]:
    """One line per stage of ``training.json`` (a staged recipe nests the earlier stage under "init"), with any
    further scalar fields the trainer records (recipe, seed …) after it."""
    if training is None:
        return []
    lines = ["## Training", ""]
    stage: dict[str, Any] | None = training
    depth = 0
    while stage is not None:
        indent = "  " * depth
        pairs = ", ".join(f"{a}–{b}" for a, b in stage.get("pairs", []))
        earlier = stage.get("init") if isinstance(stage.get("init"), dict) else None
        lines.append(f"{indent}- {stage.get('steps', '?')} steps on {', '.join(stage.get('datasets', [])) or '?'}"
                     f" (pairs: {pairs or '?'})" + (f", started from `{earlier['from']}`:" if earlier else ""))
        lines += [f"{indent}  {key}: {value}" for key, value in stage.items()
                  if key not in STAGE_KEYS and isinstance(value, (str, int, float, bool))]
        stage = earlier
        depth += 1
    return lines + [""]


def _eval_section(directory: Path) -> list[str]:
    for name in EVAL_REPORTS:
        report = directory / name
        if report.is_file():
            body = ("\n" + report.read_text()).replace("\n## ", "\n### ")  # under this card's own heading
            return ["## Evaluation", "", f"From `{name}`:", "", body.strip(), ""]
    return []


def _read_json(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    return data if isinstance(data, dict) else None


def _millions(n: int) -> str:
    return f"{n / 1e6:.1f} M" if n >= 1e5 else f"{n:,}"
