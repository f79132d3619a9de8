"""Zero-shot classification by text prompts (open_clip's classifier construction, CLIP_benchmark's metrics)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

import numpy as np

if TYPE_CHECKING:
    from ..model import OmniEmbedModel

DEFAULT_TEMPLATES = (
    "a photo of the {}.",
    "a {}.",
    "the {}.",
    "{}",
)


@dataclass
class ZeroShotResult:
    """top-1/top-5 accuracy, mean per-class recall, and the confusion matrix [C, C] (rows: true class)."""

    top1: float
    top5: float
    mean_per_class_recall: float
    confusion: np.ndarray

    def as_dict(self) -> dict[str, float]:
        return {"top1": self.top1, "top5": self.top5, "mean_per_class_recall": self.mean_per_class_recall}


def text_classifier(model: "OmniEmbedModel", class_names: Sequence[str],
                    templates: Sequence[str] = DEFAULT_TEMPLATES, batch_size: int = 64) -> np.ndarray:
    """One unit vector per class [C, E]: the renormalised mean of that class's prompt embeddings (embedded with the
    model's prompt modality, ``ModelConfig.prompt``)."""
    prompts = [t.format(name) for name in class_names for t in templates]
    vectors = model.embed(prompts, modality=model.prompt_modality(), batch_size=batch_size)
    per_class = vectors.reshape(len(class_names), len(templates), -1).mean(axis=1)
    return per_class / np.linalg.norm(per_class, axis=1, keepdims=True)


def classify(embeddings: np.ndarray, labels: np.ndarray, classifier: np.ndarray) -> ZeroShotResult:
    """Score unit rows [N, E] against class vectors [C, E]; labels [N] are class indices."""
    labels = np.asarray(labels)
    n_classes = classifier.shape[0]
    scores = embeddings @ classifier.T
    ranked = np.argsort(-scores, axis=1)
    top1 = float((ranked[:, 0] == labels).mean())
    top5 = float((ranked[:, : min(5, n_classes)] == labels[:, None]).any(axis=1).mean())
    confusion = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(confusion, (labels, ranked[:, 0]), 1)
    support = confusion.sum(axis=1)
    present = support > 0
    recall = float((np.diag(confusion)[present] / support[present]).mean()) if present.any() else 0.0
    return ZeroShotResult(top1, top5, recall, confusion)
