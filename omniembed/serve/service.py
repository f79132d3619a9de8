"""``SearchService``: what the web API does, without HTTP — search an index by text, upload or item, and read an
item's media, thumbnail or points by its id (never by a path from the request)."""

from __future__ import annotations

import functools
import io
import mimetypes
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import EmptyInputError, InputError, OmniEmbedError, UnreadableInputError
from ..index import Index, SearchHit
from ..index.store import ItemRow
from ..registry import Modality, get_modality
from .batching import TextBatcher
from .config import ServeConfig
from .errors import ItemNotFoundError, ItemUnavailableError
from .views import view_of

TEXT_PREVIEW_CHARS = 300
POINTS_PREVIEW = 2048
"""Most points sent to the page's 3-D viewer."""
SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class Query:
    """What a search was asked with, as the page shows it: ``kind`` is text, upload or item."""

    kind: str
    text: str | None = None
    name: str | None = None
    modality: str | None = None
    id: int | None = None


class SearchService:
    """One open :class:`~omniembed.index.Index` (its model loaded) served to many threads.

    The model runs one call at a time (a lock: encoders and tokenizers are not meant for concurrent calls, and on a
    CPU parallel calls only compete for the same cores); concurrent text queries share calls (:class:`TextBatcher`);
    faiss and SQLite reads run concurrently (one SQLite connection per thread).
    """

    def __init__(self, index: Index, config: ServeConfig):
        self.index = index
        self.config = config
        self.model = index.model  # loaded now: a bad model fails at start-up, not on the first query
        self._model_lock = threading.Lock()
        self._texts = TextBatcher(self.model, self._model_lock, modality=self.model.prompt)
        self._thumbnail = functools.lru_cache(maxsize=config.thumbnail_cache)(self._render_thumbnail)

    # ---- describing ----------------------------------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        """Counts by modality, the model, what can be uploaded, and how each modality's tiles are drawn."""
        info = self.index.info()
        modalities = self.model.modalities
        return {"model_name": info["model_name"],
                "model": info["model"] if self.config.paths_visible else None,
                "fingerprint": info["fingerprint"], "embed_dim": info["embed_dim"], "count": info["count"],
                "by_modality": info["by_modality"], "description": info["description"],
                "query_modalities": modalities,
                "upload_suffixes": sorted({s for m in modalities for s in get_modality(m).suffixes}),
                "max_upload_bytes": self.config.max_upload_bytes, "max_k": self.config.max_k,
                "views": {m: self._view(m) for m in sorted(set(modalities) | set(info["by_modality"]))}}

    def _view(self, modality: str) -> dict[str, object]:
        view = view_of(modality).to_dict()
        view["thumbnail"] = bool(view["thumbnail"]) and _draws_thumbnails(self._processor(modality))
        return view

    # ---- searching -----------------------------------------------------------------------------------------
    def search_text(self, text: str, k: int, modalities: Sequence[str] | None) -> dict[str, Any]:
        text = text.strip()
        if not text:
            raise EmptyInputError("text query", "is empty")
        if len(text) > self.config.max_text_chars:
            raise InputError("text query", f"is {len(text)} characters, over the limit of "
                                           f"{self.config.max_text_chars}")
        return self._result(Query("text", text=text), self._texts.embed(text), k, modalities)

    def search_file(self, path: Path, name: str, k: int, modalities: Sequence[str] | None) -> dict[str, Any]:
        """Search with an uploaded file saved at ``path`` (named for its suffix); errors name the upload ``name``.

        The file goes through ``model.embed`` like any other: modality from its suffix, the modality's loader."""
        try:
            with self._model_lock:
                vector = self.model.embed([path])[0]
        except InputError as exc:  # named for the upload, not for the server's temporary copy
            raise type(exc)(name, _hide(exc.reason, path, name)) from None
        except OmniEmbedError:
            raise
        except Exception as exc:  # a decoder's own error on a malformed file is still the file's problem
            raise UnreadableInputError(name, f"cannot be read ({type(exc).__name__}: "
                                             f"{_hide(str(exc), path, name)})") from None
        return self._result(Query("upload", name=name, modality=self.model.modality_of(path)), vector, k,
                            modalities)

    def search_item(self, item_id: int, k: int, modalities: Sequence[str] | None) -> dict[str, Any]:
        """More like an indexed item: its stored vector is the query; the item itself is left out."""
        row = self.item(item_id)
        ids, vectors = self.index.store.vectors("id = ?", (item_id,), self.index.embed_dim)
        if not len(ids):
            raise ItemNotFoundError(f"item {item_id}", "is no longer in the index")
        query = Query("item", name=Path(row.path).name, modality=row.modality, id=item_id)
        return self._result(query, vectors[0], k, modalities, exclude=item_id)

    def _result(self, query: Query, vector: np.ndarray, k: int, modalities: Sequence[str] | None,
                exclude: int | None = None) -> dict[str, Any]:
        hits = self.index.search_vector(vector, k + (exclude is not None), modalities)
        hits = [h for h in hits if h.id != exclude][:k]
        return {"query": {key: value for key, value in query.__dict__.items() if value is not None},
                "hits": [self.describe(h, rank, h.score) for rank, h in enumerate(hits, 1)]}

    def describe(self, item: ItemRow | SearchHit, rank: int | None = None,
                 score: float | None = None) -> dict[str, Any]:
        """An item as the page shows it: id, rank, score, modality, file name, label, media URL, tile view (and the
        path on loopback; the text itself for a text file)."""
        out = {"id": item.id, "rank": rank, "score": None if score is None else round(score, 6),
               "modality": item.modality, "name": Path(item.path).name, "label": item.label, "size": item.size,
               "media": f"/api/items/{item.id}/media", "view": self._view(item.modality)}
        if self.config.paths_visible:
            out["path"] = item.path
        if out["view"]["player"] == "text":
            out["text"] = _text_preview(Path(item.path))
        return out

    # ---- items ---------------------------------------------------------------------------------------------
    def item(self, item_id: int) -> ItemRow:
        """The row with this id in the published generation (what searches return)."""
        row = self.index.store.published_row(item_id)
        if row is None:
            raise ItemNotFoundError(f"item {item_id}", "no such item in the index")
        return row

    def media(self, item_id: int) -> tuple[Path, str]:
        """(the indexed file, its MIME type) for an id."""
        row = self.item(item_id)
        path = Path(row.path)
        if not path.is_file():
            raise ItemUnavailableError(f"item {item_id} ({path.name})", "its file is gone since it was indexed")
        return path, mimetypes.guess_type(path.name)[0] or "application/octet-stream"

    def thumbnail(self, item_id: int) -> bytes:
        """The modality's picture of the item as PNG bytes (cached by id and content hash)."""
        row = self.item(item_id)
        if not self._view(row.modality)["thumbnail"]:
            raise ItemNotFoundError(f"item {item_id} ({Path(row.path).name})",
                                    f"has no thumbnail (the {row.modality} modality draws none)")
        return self._thumbnail(row.path, row.modality, row.hash, item_id)

    def _render_thumbnail(self, path: str, modality: str, content_hash: str, item_id: int) -> bytes:
        from PIL import Image

        try:
            picture = self._processor(modality).thumbnail(Path(path), self.config.thumbnail_size)
        except Exception as exc:  # the file changed or vanished since it was indexed
            raise ItemUnavailableError(f"item {item_id} ({Path(path).name})",
                                       f"cannot draw a thumbnail ({type(exc).__name__}: {exc})") from None
        buffer = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(picture)).save(buffer, format="PNG", optimize=True)
        return buffer.getvalue()

    def points(self, item_id: int) -> list[list[float]]:
        """The item's points as the model sees them (normalised to the unit sphere, y up): [N, 3], N ≤
        :data:`POINTS_PREVIEW`, rounded to 4 decimals."""
        row = self.item(item_id)
        if view_of(row.modality).player != "points":
            raise ItemNotFoundError(f"item {item_id} ({Path(row.path).name})", f"has no points (it is {row.modality})")
        processor = self._processor(row.modality)
        try:
            xyz = np.asarray(processor.preprocess(processor.load(Path(row.path)))[:, :3], dtype=np.float32)
        except Exception as exc:
            raise ItemUnavailableError(f"item {item_id} ({Path(row.path).name})",
                                       f"cannot be read ({type(exc).__name__}: {exc})") from None
        return np.round(xyz[:POINTS_PREVIEW], 4).tolist()

    def _processor(self, modality: str) -> Modality | None:
        return self.model.processors.get(modality)


def upload_name(filename: str | None) -> str:
    """A file name safe to write in a temporary folder, keeping the (compound) suffix that picks the modality."""
    name = SAFE_NAME.sub("_", Path(filename or "").name).strip("._") or "upload"
    return name[-120:]


def _hide(message: str, path: Path, name: str) -> str:
    """``message`` with the upload's temporary path (and its folder) replaced by the name it was uploaded as."""
    return message.replace(str(path), name).replace(str(path.parent), "<upload>")


def _draws_thumbnails(processor: Modality | None) -> bool:
    return processor is not None and type(processor).thumbnail is not Modality.thumbnail


def _text_preview(path: Path) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read(TEXT_PREVIEW_CHARS + 1)[:TEXT_PREVIEW_CHARS]
    except OSError:
        return None
