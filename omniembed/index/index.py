"""``Index``: files embedded by one model, searchable by text, file or vector (see the package docstring)."""

from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Sequence

import numpy as np
from tqdm.auto import tqdm

from ..errors import ConfigError, InputError, MissingInputError
from ..extras import require
from ..io import atomic_path
from ..registry import list_modalities
from ..walk import discover, special_kind
from .errors import IndexCorruptError, IndexNotFoundError, ModelMismatchError
from .store import DB_FILE, FORMAT, MetadataStore
from .updates import LOCK_FILE, Label, Skipped, UpdateReport, embed_and_commit, merge_parts, plan, writer_lock
from .tuning import Tuned
from .vectors import FEATURE, MIN_TUNE_QUERIES, IndexSpec, VectorIndex, build, choose_kind, tune_to_queries

if TYPE_CHECKING:
    from ..model import OmniEmbedModel

VECTORS_FILE = "vectors.{gen:06d}.faiss"
TUNE_FILE = "tune_queries.npy"
"""The sample queries :meth:`Index.tune` was given (unit rows [Q, D] float32), applied again after every rebuild."""
SNAPSHOT_RETRIES = 5


@dataclass(frozen=True)
class SearchHit:
    """One result: its rank (1-based), cosine score and the indexed file's metadata."""

    rank: int
    score: float
    path: str
    modality: str
    label: str | None
    size: int
    mtime_ns: int
    hash: str
    id: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TuneReport:
    """What :meth:`Index.tune` measured: recall@10 of the chosen breadth on each half of the sample queries."""

    queries: int
    target: float
    breadth: int | None
    """The search breadth the tuning chose; None when none reached the target or the index searches exactly."""
    tune_recall: float
    verify_recall: float
    generation: int = 0
    description: str = ""
    skipped: list[str] = field(default_factory=list)
    """Query files that could not be embedded, each with why."""

    def summary(self) -> str:
        if self.description.startswith("flat"):
            found = "exact search"
        elif self.breadth is None:
            found = f"no breadth reached it (recall@10 {min(self.tune_recall, self.verify_recall):.3f} at the widest)"
        else:
            found = f"recall@10 {self.tune_recall:.3f} / {self.verify_recall:.3f} on the two halves"
        return f"tuned on {self.queries} queries to recall@10 {self.target}: {found}; generation {self.generation}: " \
               f"{self.description}"


class Index:
    """A directory holding ``index.sqlite`` (file metadata and vectors) and ``vectors.<generation>.faiss``.

    ``Index.build(model, out, paths)`` creates (or resumes) one; ``Index.open(out)`` opens it; ``add`` embeds new
    and changed files, ``prune`` drops deleted ones, ``search`` answers a text, a file or a vector. The model is
    loaded on first use from where the index was built from, or given; its fingerprint must match the index's.
    """

    def __init__(self, directory: Path, store: MetadataStore):
        self.directory = directory
        self.store = store
        with store.snapshot() as conn:
            self._settings = store.settings(conn)
        if self._settings.get("format") != FORMAT:
            raise IndexNotFoundError(str(directory), f"not an omniembed index (no '{FORMAT}' format record)")
        self._model = None
        self._cache: tuple[int, VectorIndex] | None = None
        self.device: str | None = None

    # ---- opening ---------------------------------------------------------------------------------------------
    @classmethod
    def open(cls, directory: str | os.PathLike, model: "OmniEmbedModel | str | os.PathLike | None" = None,
             device: str | None = None) -> "Index":
        """Open an index; ``model`` (a model, a checkpoint directory or a registered name) overrides the stored one
        and must have the index's fingerprint. ``device``: where a model loaded by the index runs."""
        require("faiss", FEATURE)  # here, not at the first search or publish, which faiss alone serves
        directory = Path(directory)
        if not (directory / DB_FILE).is_file():
            raise IndexNotFoundError(str(directory), f"no index here ({DB_FILE} missing)")
        index = cls(directory, MetadataStore(directory))
        index.device = device
        if model is not None:
            index.bind(model if _is_model(model) else _as_model(model, device))
        return index

    @classmethod
    def create(cls, directory: str | os.PathLike, model: "OmniEmbedModel | str | os.PathLike",
               spec: IndexSpec | None = None, device: str | None = None) -> "Index":
        """A new, empty index for ``model`` (a model, a checkpoint directory or a registered name; only the latter
        two can be reloaded by ``Index.open`` without a model) at ``directory``. An existing index there is opened
        instead, so a killed build resumes; it must have been built with the same model. ``spec`` replaces the
        stored one (the next publish rebuilds the faiss index)."""
        require("faiss", FEATURE)  # before anything is written: the files would be embedded, then never published
        directory = Path(directory)
        source = None if _is_model(model) else _model_source(model)
        model = model if _is_model(model) else _as_model(model, device)
        fingerprint = model.fingerprint()
        if directory.exists() and not (directory / DB_FILE).is_file() and any(
                p.name != LOCK_FILE for p in directory.iterdir()):  # a lock alone: a create killed at its start
            raise IndexNotFoundError(str(directory), "exists, is not empty and holds no index")
        directory.mkdir(parents=True, exist_ok=True)
        with writer_lock(directory):
            store = MetadataStore(directory, create=True)
            with store.transaction() as conn:
                settings = store.settings(conn)
                if settings.get("format") != FORMAT:
                    store.set_settings(conn, {"format": FORMAT, "model": source, "model_name": model.config.name,
                                              "fingerprint": fingerprint, "embed_dim": model.embed_dim,
                                              "spec": (spec or IndexSpec()).validate().to_dict(), "generation": 0})
                else:
                    _check_fingerprint(directory, settings, fingerprint, model.config.name)
                    if spec is not None:
                        store.set_settings(conn, {"spec": spec.validate().to_dict()})
        index = cls(directory, store)
        index._model, index.device = model, device
        return index

    @classmethod
    def build(cls, model: "OmniEmbedModel | str | os.PathLike", out: str | os.PathLike,
              paths: Iterable[str | os.PathLike] = (), spec: IndexSpec | None = None, label: Label = None,
              batch_size: int = 32, progress: bool | None = None, device: str | None = None) -> "Index":
        """Create (or resume) the index at ``out`` and add every file under ``paths``
        (``Index.create(out, model).add(paths)`` does the same and returns the :class:`UpdateReport`)."""
        index = cls.create(out, model, spec, device)
        index.add(paths, label=label, batch_size=batch_size, progress=progress)
        return index

    # ---- the model -------------------------------------------------------------------------------------------
    @property
    def fingerprint(self) -> str:
        return str(self._settings["fingerprint"])

    @property
    def embed_dim(self) -> int:
        return int(self._settings["embed_dim"])

    @property
    def spec(self) -> IndexSpec:
        return IndexSpec.from_dict(self._settings["spec"])

    @property
    def model(self) -> "OmniEmbedModel":
        """The index's model: bound, else loaded from where the index was built from."""
        if self._model is None:
            source = self._settings.get("model")
            if source is None:
                raise ConfigError(f"{self.directory}: the index was built from an in-memory model; "
                                  "pass model= to Index.open (or --model on the command line)")
            self.bind(_as_model(source, self.device))
        return self._model

    def bind(self, model: "OmniEmbedModel") -> None:
        """Use ``model`` for queries and adds; it must be the model the index was built with."""
        _check_fingerprint(self.directory, self._settings, model.fingerprint(), model.config.name)
        self._model = model

    # ---- writing ---------------------------------------------------------------------------------------------
    def add(self, paths: Iterable[str | os.PathLike], label: Label = None, batch_size: int = 32,
            rehash: bool = False, progress: bool | None = None) -> UpdateReport:
        """Embed files under ``paths`` that are new or changed (by content hash; size + mtime equal to the stored
        ones count as unchanged unless ``rehash``), then publish a new generation. Unreadable and corrupt files are
        skipped and listed in the report; files whose suffix maps to none of the model's modalities are ignored."""
        if batch_size < 1:
            raise ConfigError(f"batch_size must be ≥ 1, got {batch_size}")
        model = self.model
        report = UpdateReport()
        with self._writing() as gen:
            found = discover(paths, model.modality_of)
            report.ignored = [str(p) for p in found.ignored]
            report.skipped = [Skipped(str(p), "not found") for p in found.missing]
            report.skipped += [Skipped(str(p), f"not a regular file but a {special_kind(p)}: not read")
                               for p in found.special]
            planned = plan(self.store, found.files, label, rehash, report)
            show = _show_progress(progress)
            with tqdm(total=len(planned), disable=not show, desc="index", unit="file") as bar:
                for start in range(0, len(planned), batch_size):
                    chunk = planned[start:start + batch_size]
                    embed_and_commit(self.store, model, chunk, label, batch_size, gen, report)
                    bar.update(len(chunk))
            self._publish(gen, report, show)
        return report

    def add_embeddings(self, parts: Sequence[str | os.PathLike], label: Label = None) -> UpdateReport:
        """Merge part files written by ``omniembed embed`` (one per rank): rows of files the index lacks, or holds
        with another hash, are inserted with their stored vectors; text rows are ignored."""
        report = UpdateReport()
        with self._writing() as gen:
            merge_parts(self.store, parts, self.fingerprint, self.embed_dim, label, gen, report)
            self._publish(gen, report, _show_progress(None))
        return report

    def prune(self) -> UpdateReport:
        """Drop the rows of files that no longer exist, then publish a new generation."""
        report = UpdateReport()
        with self._writing() as gen:
            gone = [row for row in self.store.live_rows().values() if not Path(row.path).is_file()]
            with self.store.transaction() as conn:
                self.store.retire(conn, gone, gen)
            report.removed = len(gone)
            self._publish(gen, report, _show_progress(None))
        return report

    def tune(self, queries: Any, target_recall: float | None = None, progress: bool | None = None) -> TuneReport:
        """Tune the search breadth on sample ``queries`` of the kind the index will serve — texts, files or unit
        vectors [Q, D], at least 20 — instead of rows held out of it: for an index of images searched by recordings,
        say, whose embeddings lie elsewhere in the space than the images'. Their exact top-10 is the truth; half
        picks the smallest breadth reaching ``target_recall`` (default: the spec's), half verifies it. An automatic
        index becomes exact where no breadth reaches it, or where the scan is as fast; one its build left exact
        (judged on held-out rows) is rebuilt as the structure its size calls for and judged on the queries. The
        queries are kept in the index (``tune_queries.npy``) and tune it again after every rebuild, in place of
        held-out rows."""
        target = self.spec.target_recall if target_recall is None else float(target_recall)
        if not 0.0 < target <= 1.0:
            raise ConfigError(f"target recall must lie in (0, 1], got {target}")
        vectors, skipped = self.embed_queries(queries)
        if len(vectors) < MIN_TUNE_QUERIES:
            raise ConfigError(f"tuning needs at least {MIN_TUNE_QUERIES} queries, got {len(vectors)}")
        report = UpdateReport()
        with self._writing() as gen:
            if gen == 1:
                raise ConfigError(f"{self.directory}: the index is empty; add files before tuning it")
            with atomic_path(self.directory / TUNE_FILE) as tmp, open(tmp, "wb") as f:
                np.save(f, vectors)
            with self.store.transaction() as conn:
                self.store.set_settings(conn, {"tune_target": target})
            self._refresh()
            tuned = self._publish(gen, report, _show_progress(progress), retune=True)
        exact = tuned is None or report.description.startswith("flat")
        return TuneReport(len(vectors), target, None if exact else tuned.value,
                          tuned.tune_recall if tuned else 1.0, tuned.verify_recall if tuned else 1.0,
                          report.generation, report.description, skipped)

    def embed_queries(self, queries: Any) -> tuple[np.ndarray, list[str]]:
        """Queries — texts and files, or vectors [Q, D] — as unit rows [Q, D] float32 (files and texts embedded in
        batches), and the files that could not be embedded, each with why (skipped)."""
        if isinstance(queries, np.ndarray) or hasattr(queries, "detach"):
            rows = np.asarray(queries.detach().cpu() if hasattr(queries, "detach") else queries, np.float32)
            if rows.ndim != 2:
                raise InputError("<query vectors>", f"expected rows [Q, {self.embed_dim}], got shape {rows.shape}")
            return (np.stack([self.query_vector(row) for row in rows]) if len(rows) else rows), []
        queries = list(queries)
        for q in queries:
            if not isinstance(q, (str, os.PathLike)):
                raise InputError(f"<{type(q).__name__}>", "a tuning query is a text, a file path or a vector row")
            if isinstance(q, os.PathLike) and not Path(q).is_file():
                raise MissingInputError(str(q), "file not found")
        files = [Path(q) for q in queries if isinstance(q, os.PathLike) or os.path.isfile(q)]
        texts = [q for q in queries if isinstance(q, str) and not os.path.isfile(q)]
        parts, failures = [], []
        if files:
            rows, failures = self.model.embed(files, on_error="skip")
            parts.append(rows)
        if texts:
            parts.append(self.model.embed(texts, modality=self.model.prompt_modality()))
        rows = np.concatenate(parts).astype(np.float32) if parts else np.zeros((0, self.embed_dim), np.float32)
        return rows, [f"{f.source}: {f.reason}" for f in failures]

    def _tuning_queries(self) -> tuple[np.ndarray, float] | None:
        """The queries :meth:`tune` stored and their target, or None. The rows are mapped, not read: :meth:`info`
        only counts them."""
        path = self.directory / TUNE_FILE
        if not path.is_file():
            return None
        try:
            rows = np.load(path, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise IndexCorruptError(str(path), f"cannot read the tuning queries ({exc}); run `omniembed index "
                                               "tune` again or delete the file") from exc
        if rows.ndim != 2 or rows.shape[1] != self.embed_dim:
            raise IndexCorruptError(str(path), f"holds rows of shape {rows.shape}, not [Q, {self.embed_dim}]")
        return rows, float(self._settings.get("tune_target", self.spec.target_recall))

    @contextlib.contextmanager
    def _writing(self) -> Iterator[int]:
        """Hold the writer lock; yield the generation being written (the published one + 1)."""
        with writer_lock(self.directory):
            self._refresh()
            yield int(self._settings.get("generation", 0)) + 1
        self._refresh()

    def _refresh(self) -> None:
        with self.store.snapshot() as conn:
            self._settings = self.store.settings(conn)

    def _publish(self, gen: int, report: UpdateReport, progress: bool, retune: bool = False) -> Tuned | None:
        """Bring the faiss index up to the rows of generation ``gen``, write it, and make ``gen`` current.

        Incremental (added rows appended, retired rows removed) when the structure allows it; rebuilt from every
        live vector (SQLite holds them all) when none exists yet or the published file is missing or unreadable,
        the kind or spec changed, the row count outgrew the last build, an HNSW graph lost rows, or ``retune``
        finds exact search where an automatic build abandoned the structure the size called for (judged on
        held-out rows; the sample queries judge it afresh). After a rebuild, or with ``retune``, an approximate
        index is tuned on the queries :meth:`tune` stored, if any, instead of held-out rows (returns what that
        tuning measured).
        """
        published = int(self._settings.get("generation", 0))
        spec, dim = self.spec, self.embed_dim
        added_ids, added = self.store.added_in(gen, dim)
        removed = self.store.removed_in(gen)
        current = self._readable_vectors() if published else None  # a copy: readers keep their cached one
        if current is not None and not len(added_ids) and not len(removed) and not retune and \
                self._settings["built_spec"] == spec.to_dict():
            report.generation, report.description = published, self._settings["description"]
            return None
        total = sum(self.store.counts()["live"].values())
        # the kind the size called for at the last build: a build may fall back from it to exact search
        planned = self._settings.get("planned_kind", current.kind if current is not None else None)
        abandoned = current is not None and current.kind == "flat" and planned not in (None, "flat")
        rebuild = (current is None or planned != choose_kind(total, dim, spec)
                   or self._settings.get("built_spec") != spec.to_dict()
                   or (planned != "flat"  # nothing in a planned flat index was trained or tuned on fewer rows
                       and total >= spec.rebuild_growth * max(int(self._settings.get("built_count", 0)), 1))
                   or (len(removed) and not current.can_remove())
                   or (retune and abandoned))
        tuning = self._tuning_queries() if rebuild or retune else None
        with tqdm(total=total if rebuild else len(added_ids), disable=not progress, desc="vectors",
                  unit="row") as bar:
            live = None  # every live row [N] ids, [N, D] vectors, read once: a rebuild and its tuning share them
            if rebuild:
                live = self.store.live_vectors(dim)
                vindex = build(live[1], live[0], spec, dim, progress=bar.update, held_out=tuning is None)
                built_count, planned = total, choose_kind(total, dim, spec)
            else:
                vindex = current
                if len(removed):
                    vindex.remove(removed)
                vindex.add(added, added_ids, progress=bar.update)
                built_count = int(self._settings["built_count"])
        tuned = None
        if tuning is not None and vindex.kind != "flat":
            ids, vectors = live if live is not None else self.store.live_vectors(dim)
            vindex, tuned = tune_to_queries(vindex, vectors, ids, *tuning, auto=spec.kind == "auto")
        name = VECTORS_FILE.format(gen=gen)
        vindex.write(self.directory / name)
        description = vindex.describe()
        with self.store.transaction() as conn:
            self.store.publish(conn, gen, {"vectors_file": name, "kind": vindex.kind, "reason": vindex.reason,
                                           "planned_kind": planned, "built_count": built_count,
                                           "built_spec": spec.to_dict(), "description": description})
        keep = {name, self._settings.get("vectors_file")}
        for old in self.directory.glob("vectors.*.faiss"):
            if old.name not in keep:
                old.unlink(missing_ok=True)
        self._cache = (gen, vindex)
        report.generation, report.description = gen, description
        return tuned

    # ---- reading ---------------------------------------------------------------------------------------------
    def search(self, query: Any, k: int = 10, modalities: Sequence[str] | None = None) -> list[SearchHit]:
        """The ``k`` indexed files closest to ``query`` — a text (``str``), a file (``Path``, or a ``str`` naming an
        existing file), or an embedding ``[D]`` — best first, optionally only of the given ``modalities``."""
        return self.search_vector(self.query_vector(query), k, modalities)

    def query_vector(self, query: Any) -> np.ndarray:
        """A query as a unit vector ``[D]``: texts and files are embedded with the index's model."""
        if isinstance(query, np.ndarray) or hasattr(query, "detach"):
            vector = np.asarray(query.detach().cpu() if hasattr(query, "detach") else query, np.float32).reshape(-1)
            if vector.shape[0] != self.embed_dim or not np.isfinite(vector).all() or not vector.any():
                raise InputError("<query vector>", f"expected a finite, non-zero vector of {self.embed_dim} values")
            return vector / np.linalg.norm(vector)
        if isinstance(query, os.PathLike) or (isinstance(query, str) and os.path.isfile(query)):
            if not Path(query).is_file():
                raise MissingInputError(str(query), "file not found")
            return self.model.embed([Path(query)])[0]
        if isinstance(query, str):
            return self.model.embed([query], modality=self.model.prompt_modality())[0]
        raise InputError(f"<{type(query).__name__}>", "a query is a text, a file path or a vector")

    def search_vector(self, vector: np.ndarray, k: int = 10,
                      modalities: Sequence[str] | None = None) -> list[SearchHit]:
        """Search with a unit vector ``[D]`` (see :meth:`search`)."""
        if k < 1:
            raise ConfigError(f"k must be ≥ 1, got {k}")
        wanted = _check_modalities(modalities)
        for _ in range(SNAPSHOT_RETRIES):
            with self.store.snapshot() as conn:
                settings = self.store.settings(conn)
                gen = int(settings.get("generation", 0))
                if gen == 0:
                    return []
                try:
                    vindex = self._cached_vectors(gen, settings)
                except FileNotFoundError:  # a writer published twice since this snapshot began: take a new one
                    continue
                return self._hits(conn, vindex, vector, k, wanted)
        raise IndexCorruptError(str(self.directory / settings["vectors_file"]),
                                "missing (`omniembed index prune` rebuilds it from index.sqlite)")

    def _hits(self, conn, vindex: VectorIndex, vector: np.ndarray, k: int, wanted: set[str] | None) -> list[SearchHit]:
        """Top-k rows, widening the faiss search ×4 until enough rows of the wanted modalities are found."""
        fetch = k if wanted is None else 4 * k
        while True:
            scores, ids = vindex.search(vector[None].astype(np.float32), fetch)
            rows = self.store.rows(conn, [int(i) for i in ids[0] if i >= 0])
            hits = [(float(s), rows[int(i)]) for s, i in zip(scores[0], ids[0])
                    if int(i) in rows and (wanted is None or rows[int(i)].modality in wanted)]
            if len(hits) >= k or fetch >= vindex.count:
                break
            fetch = min(vindex.count, 4 * fetch)
        return [SearchHit(r + 1, s, row.path, row.modality, row.label, row.size, row.mtime_ns, row.hash, row.id)
                for r, (s, row) in enumerate(hits[:k])]

    def _cached_vectors(self, gen: int, settings: dict[str, Any]) -> VectorIndex:
        """The faiss index of generation ``gen`` (kept until the generation changes)."""
        if self._cache is None or self._cache[0] != gen:
            self._cache = (gen, self._load_vectors(settings))
        return self._cache[1]

    def _readable_vectors(self) -> VectorIndex | None:
        """The published faiss index, or None when its file is missing or unreadable (a rebuild replaces it)."""
        try:
            return self._load_vectors(self._settings)
        except (FileNotFoundError, IndexCorruptError):
            return None

    def _load_vectors(self, settings: dict[str, Any]) -> VectorIndex:
        """The faiss file named in ``settings``, read afresh. FileNotFoundError when a writer has deleted it."""
        path = self.directory / settings["vectors_file"]
        if not path.is_file():
            raise FileNotFoundError(path)
        vindex = VectorIndex.read(path, settings["kind"], settings.get("reason", ""))
        if vindex.dim != self.embed_dim:
            raise IndexCorruptError(str(path), f"holds {vindex.dim}-d vectors, the index {self.embed_dim}-d")
        return vindex

    def info(self) -> dict[str, Any]:
        """Counts by modality, the model, the vector structure, file sizes."""
        self._refresh()
        s = self._settings
        counts = self.store.counts()
        tuning = self._tuning_queries()
        files = {p.name: p.stat().st_size for p in self.directory.iterdir() if p.is_file()}
        return {"directory": str(self.directory), "model": s.get("model"), "model_name": s.get("model_name"),
                "fingerprint": s["fingerprint"], "embed_dim": s["embed_dim"], "generation": s.get("generation", 0),
                "kind": s.get("kind"), "description": s.get("description", "empty"),
                "count": sum(counts["live"].values()) - sum(counts["pending"].values()),
                "by_modality": counts["live"], "pending": counts["pending"], "files": files, "spec": s["spec"],
                "tune_queries": 0 if tuning is None else len(tuning[0]),
                "tune_target": None if tuning is None else tuning[1]}

    def export(self, out: str | os.PathLike) -> int:
        """Write the published rows (metadata + vectors) to a Parquet file; returns the row count."""
        from .export import export_parquet

        self._refresh()
        return export_parquet(self.store, self._settings, out)

    def close(self) -> None:
        self.store.close()

    def __repr__(self) -> str:
        return f"Index({str(self.directory)!r}, {self._settings.get('description', 'empty')})"


# ---- helpers -----------------------------------------------------------------------------------------------------
def _check_fingerprint(directory: Path, settings: dict[str, Any], found: str, name: str) -> None:
    if found != settings["fingerprint"]:
        raise ModelMismatchError(
            str(directory),
            f"built with model {settings.get('model_name')} (fingerprint {settings['fingerprint']}, from "
            f"{settings.get('model') or 'an in-memory model'}), but the model given has fingerprint {found} ({name}); "
            "vectors of different models are not comparable — use the index's model or build a new index")


def _check_modalities(modalities: Sequence[str] | None) -> set[str] | None:
    if modalities is None:
        return None
    wanted = {m.strip() for m in modalities if m.strip()}
    unknown = wanted - set(list_modalities())
    if unknown:
        raise ConfigError(f"unknown modality {', '.join(sorted(unknown))} (registered: {', '.join(list_modalities())})")
    return wanted or None


def _show_progress(progress: bool | None) -> bool:
    return progress if progress is not None else sys.stderr.isatty()


def _is_model(model: Any) -> bool:
    from ..model import OmniEmbedModel

    return isinstance(model, OmniEmbedModel)


def _model_source(spec: str | os.PathLike) -> str:
    """How the index records a model: a checkpoint directory's absolute path, or a registered name."""
    return os.path.abspath(spec) if Path(spec).is_dir() else str(spec)


def _as_model(spec: "str | os.PathLike", device: str | None = None) -> "OmniEmbedModel":
    """A checkpoint directory, a pretrained model name or a registered config (random init, seed 0)."""
    from ..api import open_model

    return open_model(spec, device=device)
