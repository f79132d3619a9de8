"""The SQLite half of an index: one row per indexed file (metadata + its vector), and the index's settings.

Rows are versioned by *generation*. A writer works on generation ``G + 1`` while readers use the published ``G``:
a new or re-embedded file gets a row with ``gen_added = G + 1``; a replaced, failed or pruned file's row gets
``gen_removed = G + 1``. Every batch is one transaction, so a killed writer leaves only whole batches, and a
re-run finds them (same path, same hash) and does not embed them again. Publishing generation ``G + 1`` (the
faiss file and the ``generation`` setting, in one transaction) makes them visible; rows that were already dead in
``G`` are deleted then. A reader's search runs in one read transaction (a WAL snapshot), so the rows it looks up
are those of the generation whose faiss file it searched, whatever a writer commits meanwhile.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from .errors import IndexCorruptError, NonFiniteVectorError

DB_FILE = "index.sqlite"
FORMAT = "omniembed-index/1"
SCHEMA = """
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS items (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    path TEXT NOT NULL,
    modality TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    hash TEXT NOT NULL,
    label TEXT,
    vector BLOB NOT NULL,
    gen_added INTEGER NOT NULL,
    gen_removed INTEGER
);
CREATE UNIQUE INDEX IF NOT EXISTS items_live_path ON items(path) WHERE gen_removed IS NULL;
CREATE INDEX IF NOT EXISTS items_added ON items(gen_added);
CREATE INDEX IF NOT EXISTS items_removed ON items(gen_removed) WHERE gen_removed IS NOT NULL;
"""
COLUMNS = "id, path, modality, size, mtime_ns, hash, label, gen_added"
ID_CHUNK = 900
"""Ids per ``IN (...)`` query (below SQLite's bound-parameter limit on every build)."""


@dataclass(frozen=True)
class ItemRow:
    """One indexed file, as stored (the vector is read separately)."""

    id: int
    path: str
    modality: str
    size: int
    mtime_ns: int
    hash: str
    label: str | None
    gen_added: int


@dataclass(frozen=True)
class NewItem:
    """A file embedded by the writer, before it has a row id. ``vector``: float32 [D]."""

    path: str
    modality: str
    size: int
    mtime_ns: int
    hash: str
    label: str | None
    vector: np.ndarray


class MetadataStore:
    """The ``index.sqlite`` of an index directory (WAL mode; one connection per thread)."""

    def __init__(self, directory: Path, create: bool = False):
        self.path = Path(directory) / DB_FILE
        if not create and not self.path.is_file():
            raise IndexCorruptError(str(self.path), "missing")
        self._local = threading.local()
        if create:
            with self.transaction() as conn:
                for statement in _statements(SCHEMA):  # executescript would commit the open transaction
                    conn.execute(statement)

    # ---- connections and transactions ------------------------------------------------------------------------
    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = sqlite3.connect(self.path, timeout=60.0, isolation_level=None)
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=FULL")
            except sqlite3.DatabaseError as exc:
                raise IndexCorruptError(str(self.path), f"not a readable SQLite database ({exc})") from exc
            self._local.conn = conn
        return conn

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (``BEGIN IMMEDIATE``): committed when the block succeeds, rolled back otherwise."""
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except sqlite3.DatabaseError as exc:
            conn.execute("ROLLBACK")
            raise self._damaged(exc) from exc
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[sqlite3.Connection]:
        """A read transaction: every query in the block sees the same committed state."""
        conn = self._conn()
        conn.execute("BEGIN DEFERRED")
        try:
            try:
                conn.execute("SELECT 1 FROM settings LIMIT 1").fetchall()  # starts the read snapshot now
            except sqlite3.DatabaseError as exc:
                raise IndexCorruptError(str(self.path), f"not an index database ({exc})") from exc
            yield conn
        except sqlite3.DatabaseError as exc:
            raise self._damaged(exc) from exc
        finally:
            conn.execute("COMMIT")

    def _damaged(self, exc: sqlite3.DatabaseError) -> Exception:
        """A query's failure as :class:`IndexCorruptError` (a dropped table, a malformed page); a busy or locked
        database and a constraint violation keep their own exception."""
        if isinstance(exc, sqlite3.IntegrityError) or any(w in str(exc) for w in ("locked", "busy")):
            return exc
        return IndexCorruptError(str(self.path), f"the database is damaged ({exc}); rebuild the index")

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    # ---- settings --------------------------------------------------------------------------------------------
    def settings(self, conn: sqlite3.Connection) -> dict[str, object]:
        """The index's settings; one that is not JSON is an :class:`IndexCorruptError` naming its key."""
        values = {}
        for key, value in conn.execute("SELECT key, value FROM settings"):
            try:
                values[key] = json.loads(value)
            except (json.JSONDecodeError, TypeError) as exc:
                raise IndexCorruptError(str(self.path), f"setting '{key}' is not valid JSON ({exc}); rebuild the "
                                                        "index") from None
        return values

    @staticmethod
    def set_settings(conn: sqlite3.Connection, values: dict[str, object]) -> None:
        conn.executemany("INSERT INTO settings(key, value) VALUES (?, ?) "
                         "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                         [(k, json.dumps(v)) for k, v in values.items()])

    # ---- rows ------------------------------------------------------------------------------------------------
    def live_rows(self) -> dict[str, ItemRow]:
        """path → the live row of every file (published or pending)."""
        with self.snapshot() as conn:
            cur = conn.execute(f"SELECT {COLUMNS} FROM items WHERE gen_removed IS NULL")
            return {row[1]: ItemRow(*row) for row in cur}

    @staticmethod
    def rows(conn: sqlite3.Connection, ids: Sequence[int]) -> dict[int, ItemRow]:
        """id → row for the given ids (those that exist)."""
        found: dict[int, ItemRow] = {}
        ids = [int(i) for i in ids]
        for start in range(0, len(ids), ID_CHUNK):
            chunk = ids[start:start + ID_CHUNK]
            cur = conn.execute(f"SELECT {COLUMNS} FROM items WHERE id IN ({','.join('?' * len(chunk))})", chunk)
            found.update((row[0], ItemRow(*row)) for row in cur)
        return found

    def published_row(self, row_id: int) -> ItemRow | None:
        """The row with this id if the published generation holds it (a search can return it), else None."""
        with self.snapshot() as conn:
            gen = self.settings(conn).get("generation", 0)
            row = conn.execute(f"SELECT {COLUMNS} FROM items WHERE id = ? AND gen_added <= ? "
                               "AND (gen_removed IS NULL OR gen_removed > ?)", (int(row_id), gen, gen)).fetchone()
        return ItemRow(*row) if row is not None else None

    @staticmethod
    def insert(conn: sqlite3.Connection, items: Sequence[NewItem], gen: int) -> None:
        """Store new rows; a non-finite vector raises :class:`NonFiniteVectorError` (writers filter them first,
        reporting the file as skipped: this is the guard that no NaN row ever reaches the index)."""
        for item in items:
            if not np.isfinite(item.vector).all():
                raise NonFiniteVectorError(item.path, "its vector holds NaN or Inf; not stored")
        conn.executemany(
            "INSERT INTO items(path, modality, size, mtime_ns, hash, label, vector, gen_added) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [(i.path, i.modality, i.size, i.mtime_ns, i.hash, i.label,
              np.ascontiguousarray(i.vector, dtype=np.float32).tobytes(), gen) for i in items])

    @staticmethod
    def retire(conn: sqlite3.Connection, rows: Sequence[ItemRow], gen: int) -> None:
        """End these rows at generation ``gen``: rows never published are deleted, the others marked removed."""
        conn.executemany("DELETE FROM items WHERE id = ? AND gen_added >= ?", [(r.id, gen) for r in rows])
        conn.executemany("UPDATE items SET gen_removed = ? WHERE id = ? AND gen_removed IS NULL",
                         [(gen, r.id) for r in rows])

    @staticmethod
    def restat(conn: sqlite3.Connection, updates: Sequence[tuple[int, int, int, str | None]]) -> None:
        """(id, size, mtime_ns, label): a file touched without changing content keeps its row and vector."""
        conn.executemany("UPDATE items SET size = ?, mtime_ns = ?, label = ? WHERE id = ?",
                         [(s, m, label, i) for i, s, m, label in updates])

    def vectors(self, where: str, params: Sequence[object], dim: int) -> tuple[np.ndarray, np.ndarray]:
        """(ids int64 [N], vectors float32 [N, dim]) of the rows matching ``where``, in id order."""
        with self.snapshot() as conn:
            (count,) = conn.execute(f"SELECT count(*) FROM items WHERE {where}", params).fetchone()
            ids = np.empty(count, np.int64)
            vectors = np.empty((count, dim), np.float32)
            cur = conn.execute(f"SELECT id, vector FROM items WHERE {where} ORDER BY id", params)
            for i, (row_id, blob) in enumerate(cur):
                ids[i] = row_id
                vectors[i] = self.decode_vector(row_id, blob, dim)
        return ids, vectors

    def decode_vector(self, row_id: int, blob: bytes, dim: int) -> np.ndarray:
        """A row's stored vector as float32 ``[dim]``; a blob of another length is an :class:`IndexCorruptError`."""
        if not isinstance(blob, bytes) or len(blob) != 4 * dim:
            size = len(blob) if isinstance(blob, bytes) else type(blob).__name__
            raise IndexCorruptError(str(self.path), f"row {row_id}: stored vector is {size} bytes, expected "
                                                    f"{4 * dim} ({dim} float32); rebuild the index")
        return np.frombuffer(blob, np.float32)

    def live_vectors(self, dim: int) -> tuple[np.ndarray, np.ndarray]:
        return self.vectors("gen_removed IS NULL", (), dim)

    def added_in(self, gen: int, dim: int) -> tuple[np.ndarray, np.ndarray]:
        """Live rows first added in generation ``gen`` (those the published faiss file lacks)."""
        return self.vectors("gen_added = ? AND gen_removed IS NULL", (gen,), dim)

    def removed_in(self, gen: int) -> np.ndarray:
        """Ids of published rows retired in generation ``gen`` (those the published faiss file still holds)."""
        with self.snapshot() as conn:
            cur = conn.execute("SELECT id FROM items WHERE gen_removed = ? AND gen_added < ?", (gen, gen))
            return np.array([r[0] for r in cur], np.int64)

    def counts(self) -> dict[str, dict[str, int]]:
        """{"live": {modality: n}, "pending": {modality: n}} (pending: added but not yet published)."""
        with self.snapshot() as conn:
            gen = self.settings(conn).get("generation", 0)
            live = dict(conn.execute("SELECT modality, count(*) FROM items WHERE gen_removed IS NULL "
                                     "GROUP BY modality ORDER BY modality"))
            pending = dict(conn.execute("SELECT modality, count(*) FROM items WHERE gen_removed IS NULL "
                                        "AND gen_added > ? GROUP BY modality ORDER BY modality", (gen,)))
        return {"live": live, "pending": pending}

    @staticmethod
    def publish(conn: sqlite3.Connection, gen: int, settings: dict[str, object]) -> None:
        """Make generation ``gen`` current (with its faiss file etc. in ``settings``); drop rows dead since before
        the previous generation, which no reader can still need (readers of older generations retry)."""
        conn.execute("DELETE FROM items WHERE gen_removed IS NOT NULL AND gen_removed < ?", (gen,))
        MetadataStore.set_settings(conn, {**settings, "generation": gen})


def _statements(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]
