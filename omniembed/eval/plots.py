"""Pictures of an evaluation: confusion matrices, a 2-D map of the joint space, a grid of top retrievals."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from ..extras import require

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from ..model import OmniEmbedModel


def save_figure(fig: "Figure", path: Path) -> None:
    """Write ``fig`` atomically, in the format its suffix names (.png, .pdf, .svg; none: png); an unwritable place
    is an :class:`~omniembed.errors.OutputError` naming ``path``."""
    from ..io import atomic_path

    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format=path.suffix.lstrip(".").lower() or "png")


def _figure(figsize: tuple[float, float], dpi: float | None = None) -> "Figure":
    """A figure drawn by Agg and owned by the caller. Not pyplot: switching pyplot's process-wide backend to Agg
    (``matplotlib.use``) silenced the inline plots of any notebook that made a grid or a report."""
    require("matplotlib", "plots (omniembed eval --out, omniembed search --grid)")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def plot_confusions(confusions: dict[str, np.ndarray], class_names: Sequence[str], path: Path) -> Path:
    """One heat map per modality (rows: true class, columns: predicted)."""
    fig = _figure(figsize=(3.2 * len(confusions), 3.4))
    axes = fig.subplots(1, len(confusions), squeeze=False)
    for ax, (modality, matrix) in zip(axes[0], confusions.items()):
        ax.imshow(matrix, cmap="Blues")
        ax.set_title(modality)
        ax.set_xticks(range(len(class_names)), [c[:3] for c in class_names], fontsize=6, rotation=90)
        ax.set_yticks(range(len(class_names)), [c[:3] for c in class_names], fontsize=6)
        ax.set_xlabel("predicted", fontsize=7)
    axes[0][0].set_ylabel("true", fontsize=7)
    fig.tight_layout()
    save_figure(fig, path)
    return path


def plot_joint_space(embeddings: dict[str, np.ndarray], labels: dict[str, np.ndarray], path: Path) -> Path:
    """PCA of every modality's embeddings into one 2-D map: colour = class, marker = modality."""
    stacked = np.concatenate(list(embeddings.values()))
    centred = stacked - stacked.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    markers = "os^Dv*PX"
    fig = _figure(figsize=(6, 5))
    ax = fig.subplots()
    for i, (modality, emb) in enumerate(embeddings.items()):
        xy = (emb - stacked.mean(axis=0)) @ vt[:2].T
        ax.scatter(xy[:, 0], xy[:, 1], c=labels[modality], cmap="tab10", vmin=0, vmax=9, s=12, alpha=0.7,
                   marker=markers[i % len(markers)], label=modality)
    ax.legend(fontsize=7, markerscale=1.5)
    ax.set_title("joint embedding space (PCA): colour = class, marker = modality", fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)
    return path


def plot_zero_shot_by_source(scores: dict[str, dict[str, dict[str, float]]], path: Path) -> Path:
    """One bar per (modality, source): zero-shot top-1, grouped by modality, the source's name on the bar."""
    fig = _figure(figsize=(max(4.0, 0.45 * sum(len(s) for s in scores.values()) + 1.5), 3.6))
    ax = fig.subplots()
    x, ticks = 0.0, []
    for i, (modality, by_source) in enumerate(scores.items()):
        start = x
        for name, r in by_source.items():
            ax.bar(x, r["top1"], color=f"C{i % 10}")
            ax.text(x, 0.02, name, rotation=90, ha="center", va="bottom", fontsize=6)
            x += 1
        ticks.append(((start + x - 1) / 2, modality))
        x += 0.8
    ax.set_xticks([t for t, _ in ticks], [m for _, m in ticks], fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_ylabel("zero-shot top-1", fontsize=8)
    ax.set_title("zero-shot by source", fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)
    return path


def plot_retrievals(model: "OmniEmbedModel", rows: list[tuple[str, str, list[tuple[str, str, float]]]],
                    path: Path, size: int = 96) -> Path:
    """rows: (query path, query modality, [(result path, result modality, score), ...]) → one grid PNG."""
    n_cols = 1 + max(len(r[2]) for r in rows)
    fig = _figure(figsize=(1.5 * n_cols, 1.6 * len(rows)))
    axes = fig.subplots(len(rows), n_cols, squeeze=False)
    for r, (query, query_mod, results) in enumerate(rows):
        cells = [(query, query_mod, None), *results]
        for c in range(n_cols):
            ax = axes[r][c]
            ax.axis("off")
            if c >= len(cells):
                continue
            item, modality, score = cells[c]
            ax.imshow(thumbnail(model, item, modality, size))
            caption = f"query ({modality})" if score is None else f"{modality} {score:.2f}"
            ax.set_title(caption, fontsize=6)
    fig.tight_layout()
    save_figure(fig, path)
    return path


def thumbnail(model: "OmniEmbedModel", item: str, modality: str, size: int = 96) -> np.ndarray:
    """The modality's own picture of a file, else a card with the text or file name."""
    picture = None
    if Path(item).is_file():
        try:
            picture = model.processor(modality).thumbnail(Path(item), size)
        except Exception:  # a broken file still gets a card in the grid
            picture = None
    return picture if picture is not None else text_card(Path(item).read_text()[:60] if _is_text_file(item)
                                                         else Path(item).name if Path(item).exists() else item, size)


def _is_text_file(item: str) -> bool:
    return Path(item).suffix == ".txt" and Path(item).is_file()


def text_card(text: str, size: int = 96) -> np.ndarray:
    """A white square with ``text`` wrapped on it, as uint8 [size, size, 3]."""
    import textwrap

    fig = _figure(figsize=(1, 1), dpi=size)
    fig.text(0.5, 0.5, "\n".join(textwrap.wrap(text, 14)[:5]), ha="center", va="center", fontsize=7, wrap=True)
    fig.canvas.draw()
    image = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    return image
