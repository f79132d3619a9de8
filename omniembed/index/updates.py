"""Writing rows: which files changed, embedding them a batch at a time (one transaction each), merging part
files, and the lock that keeps writers one at a time."""

from __future__ import annotations

import contextlib
import fcntl
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator, Sequence

import numpy as np

from ..walk import FoundFile, Signature, file_hash
from .errors import IndexBusyError
from .parts import read_parts
from .store import ItemRow, MetadataStore, NewItem

if TYPE_CHECKING:
    from ..model import OmniEmbedModel

LOCK_FILE = "write.lock"
Label = str | Callable[[Path], "str | None"] | None
"""A label for every added file, or a function of its path (e.g. its folder's name), or none."""


@dataclass(frozen=True)
class Skipped:
    """A file that was not indexed, and why."""

    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


@dataclass
class UpdateReport:
    """What an add, merge or prune changed; ``generation`` is the published generation afterwards."""

    added: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    skipped: list[Skipped] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    generation: int = 0
    description: str = ""

    def summary(self) -> str:
        return (f"{self.added} added, {self.updated} re-embedded, {self.unchanged} unchanged, {self.removed} removed, "
                f"{len(self.skipped)} skipped, {len(self.ignored)} ignored; generation {self.generation}: "
                f"{self.description}")


@dataclass(frozen=True)
class Planned:
    """A file to embed; ``replaces`` is its current row when its content changed."""

    found: FoundFile
    signature: Signature
    hash: str
    replaces: ItemRow | None


@contextlib.contextmanager
def writer_lock(directory: Path) -> Iterator[None]:
    """One writer at a time (an ``flock``, released by the OS even when the writer is killed). Temp files a killed
    writer left behind are removed once the lock is held."""
    with open(directory / LOCK_FILE, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise IndexBusyError(str(directory), "another process is writing to this index") from None
        try:
            for stale in directory.glob(".vectors.*.tmp"):
                stale.unlink(missing_ok=True)
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def plan(store: MetadataStore, files: list[FoundFile], label: Label, rehash: bool,
         report: UpdateReport) -> list[Planned]:
    """The files that need embedding (new, or content changed), by modality then path. A file whose size and mtime
    match its row is unchanged without reading it (unless ``rehash``); one whose hash matches keeps its vector and
    gets its size, mtime and label refreshed in place."""
    live = store.live_rows()
    planned: list[Planned] = []
    touched: list[tuple[int, int, int, str | None]] = []
    for f in files:
        path = str(f.path)
        row = live.get(path)
        try:
            signature = Signature.of(f.path)
            same_stat = row is not None and (row.size, row.mtime_ns) == (signature.size, signature.mtime_ns)
            digest = row.hash if same_stat and not rehash else file_hash(f.path)
        except OSError as exc:
            report.skipped.append(Skipped(path, f"cannot read ({exc.strerror or exc})"))
            continue
        if row is not None and row.hash == digest:
            report.unchanged += 1
            new_label = row.label if label is None else label_for(label, f.path)
            if (row.size, row.mtime_ns, row.label) != (signature.size, signature.mtime_ns, new_label):
                touched.append((row.id, signature.size, signature.mtime_ns, new_label))
            continue
        planned.append(Planned(f, signature, digest, row))
    if touched:
        with store.transaction() as conn:
            store.restat(conn, touched)
    return sorted(planned, key=lambda p: (p.found.modality, str(p.found.path)))


def embed_and_commit(store: MetadataStore, model: "OmniEmbedModel", chunk: list[Planned], label: Label,
                     batch_size: int, gen: int, report: UpdateReport) -> None:
    """Embed one batch of files and commit their rows in one transaction. A changed file's old row retires with
    it — also when the new content fails to embed (the index then holds nothing stale for that path)."""
    vectors, failures = embed_skipping(model, [p.found.path for p in chunk], batch_size)
    items = [NewItem(str(p.found.path), p.found.modality, p.signature.size, p.signature.mtime_ns, p.hash,
                     label_for(label, p.found.path), vectors[i])
             for i, p in enumerate(chunk) if i in vectors]
    with store.transaction() as conn:
        store.retire(conn, [p.replaces for p in chunk if p.replaces is not None], gen)
        store.insert(conn, items, gen)
    for i, p in enumerate(chunk):
        if i in failures:
            report.skipped.append(Skipped(str(p.found.path), failures[i]))
            report.removed += p.replaces is not None
        elif p.replaces is not None:
            report.updated += 1
        else:
            report.added += 1


def embed_skipping(model: "OmniEmbedModel", paths: list[Path],
                   batch_size: int) -> tuple[dict[int, np.ndarray], dict[int, str]]:
    """({position: vector [D]}, {position: reason}). Input errors skip their file; a batch that fails with any other
    exception is retried file by file, so a file that breaks a decoder costs only itself."""
    try:
        vectors, failures = model.embed(paths, batch_size=batch_size, on_error="skip", progress=False)
    except Exception as exc:  # noqa: BLE001 — a batch job reports and skips
        if len(paths) == 1:
            return {}, {0: f"{type(exc).__name__}: {exc}"}
        good: dict[int, np.ndarray] = {}
        bad: dict[int, str] = {}
        for i, path in enumerate(paths):
            one, failed = embed_skipping(model, [path], batch_size)
            good.update({i: v for v in one.values()})
            bad.update({i: r for r in failed.values()})
        return good, bad
    failed = {f.index: f.reason for f in failures}
    kept = [i for i in range(len(paths)) if i not in failed]
    return {i: vectors[j] for j, i in enumerate(kept)}, failed


def merge_parts(store: MetadataStore, parts: Sequence[str | os.PathLike], fingerprint: str, dim: int, label: Label,
                gen: int, report: UpdateReport) -> None:
    """Insert the file rows of ``omniembed embed`` part files that the index lacks or holds with another hash
    (one transaction per part); text rows are listed as ignored."""
    live = store.live_rows()
    merged: set[str] = set()
    for part in read_parts(parts, fingerprint, dim):
        items, retired = [], []
        for row, vector in zip(part.rows, part.vectors):
            if not np.isfinite(vector).all():
                report.skipped.append(Skipped(row.path, f"its vector in {part.source} holds NaN or Inf; not merged"))
                continue
            current = live.get(row.path)
            if row.path in merged or (current is not None and current.hash == row.hash):
                report.unchanged += 1
                continue
            if current is not None:
                retired.append(current)
            items.append(NewItem(row.path, row.modality, row.size, row.mtime_ns, row.hash,
                                 label_for(label, Path(row.path)), vector))
            merged.add(row.path)
        with store.transaction() as conn:
            store.retire(conn, retired, gen)
            store.insert(conn, items, gen)
        report.updated += len(retired)
        report.added += len(items) - len(retired)
        report.ignored += part.texts


def label_for(label: Label, path: Path) -> str | None:
    return label(path) if callable(label) else label
