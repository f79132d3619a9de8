"""The pair plan of a run: which modality pairs each dataset scores, at which logit scale, and which towers learn.

Read once from the experiment config (:meth:`PairPlan.from_config`) and handed to everything that needs it — the
model builder, the freezer, the training module's logit biases, the loss, DDP's unused-parameter check and the
exported model's training record — so that "which pairs" has one answer per run.

A pair ``[a, b]`` is scored at ``b``'s logit scale (the ``other`` side: the anchor's scale belongs to no pair, as
in ImageBind); under the SigLIP loss it also has a learnable bias named ``"a-b"``.
"""

from __future__ import annotations

from dataclasses import dataclass

from .config import ExperimentConfig


@dataclass(frozen=True)
class PlannedPair:
    """One scored pair: embeddings of ``a`` against ``b``'s, at ``b``'s logit scale, times ``weight``."""

    a: str
    b: str
    weight: float = 1.0

    @property
    def name(self) -> str:
        """The key of the pair's metrics and SigLIP bias (``"image-audio"``)."""
        return f"{self.a}-{self.b}"

    @property
    def scale(self) -> str:
        """The modality whose logit scale (temperature) the pair is scored with."""
        return self.b


@dataclass(frozen=True)
class DatasetPlan:
    """The pairs of one dataset, in the config's order, and the modalities a batch of it holds."""

    name: str
    pairs: tuple[PlannedPair, ...]

    @property
    def modalities(self) -> tuple[str, ...]:
        """Every modality of the dataset's pairs, in first-seen order (what its batches are decoded into)."""
        return tuple(dict.fromkeys(m for p in self.pairs for m in (p.a, p.b)))

    @property
    def scales(self) -> frozenset[str]:
        """The modalities whose logit scale a step on this dataset uses (and so gives a gradient)."""
        return frozenset(p.scale for p in self.pairs)


@dataclass(frozen=True)
class PairPlan:
    """Every dataset's pairs, plus the run's frozen towers (``model.frozen``; None: the model's anchor)."""

    datasets: tuple[DatasetPlan, ...]
    frozen: tuple[str, ...] | None = None

    @classmethod
    def from_config(cls, config: ExperimentConfig) -> "PairPlan":
        datasets = []
        for ds in config.data.datasets:
            weights = ds.loss_weights or [1.0] * len(ds.pairs)  # one per pair: ExperimentConfig.validate checks
            datasets.append(DatasetPlan(ds.name, tuple(PlannedPair(a, b, float(w))
                                                       for (a, b), w in zip(ds.pairs, weights))))
        frozen = tuple(config.model.frozen) if config.model.frozen is not None else None
        return cls(tuple(datasets), frozen)

    def pairs_of(self, dataset: int) -> tuple[PlannedPair, ...]:
        return self.datasets[dataset].pairs

    @property
    def modalities(self) -> tuple[str, ...]:
        """Every modality some dataset pairs, in first-seen order: the towers a step can run."""
        return tuple(dict.fromkeys(m for ds in self.datasets for m in ds.modalities))

    @property
    def pair_names(self) -> tuple[str, ...]:
        """Each distinct pair's name once, in first-seen order (the SigLIP biases)."""
        return tuple(dict.fromkeys(p.name for ds in self.datasets for p in ds.pairs))

    @property
    def scales(self) -> frozenset[str]:
        """The modalities whose logit scale learns: some pair's temperature."""
        return frozenset(s for ds in self.datasets for s in ds.scales)

    def frozen_towers(self, anchor: str) -> frozenset[str]:
        return frozenset(self.frozen if self.frozen is not None else (anchor,))

    def learning_towers(self, anchor: str) -> frozenset[str]:
        """The towers that learn: used by some pair and not frozen (LoRA adapters on a frozen tower aside)."""
        return frozenset(self.modalities) - self.frozen_towers(anchor)

    def unordered_pairs(self) -> set[tuple[str, str]]:
        """The pairs as sorted tuples (``("audio", "image")``): what a trained model's record lists."""
        return {tuple(sorted((p.a, p.b))) for ds in self.datasets for p in ds.pairs}
