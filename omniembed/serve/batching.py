"""``TextBatcher``: concurrent text queries embedded together, one ``model.embed`` call for many.

Under load most of a text query's time is the encoder's fixed cost per call (on 2 CPU cores, 24 texts in one batch
take ~40 ms, one at a time ~1.5 s). Each caller queues its text and then takes the model lock; whoever holds it
embeds everything queued (up to ``max_batch``) and hands every caller its row. A lone query is a batch of one, so
nothing waits for company.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future

import numpy as np

from ..errors import InputError


class TextBatcher:
    """Embed texts with ``model`` (``model.embed(..., modality=modality)``: the model's prompt modality, "text"
    unless its config names another) under ``lock``, coalescing callers."""

    def __init__(self, model, lock: threading.Lock, max_batch: int = 64, modality: str = "text"):
        self.model = model
        self.modality = modality
        self.lock = lock
        self.max_batch = max_batch
        self._queue: list[tuple[str, Future]] = []
        self._queue_lock = threading.Lock()

    def embed(self, text: str) -> np.ndarray:
        """The unit vector ``[D]`` of one text (raises what ``model.embed`` raised for it)."""
        done: Future = Future()
        with self._queue_lock:
            self._queue.append((text, done))
        while not done.done():
            with self.lock:
                if done.done():  # a caller before us embedded our text with theirs
                    break
                with self._queue_lock:
                    batch, self._queue = self._queue[:self.max_batch], self._queue[self.max_batch:]
                self._run(batch)
        return done.result()

    def _run(self, batch: list[tuple[str, Future]]) -> None:
        try:
            rows, failures = self.model.embed([text for text, _ in batch], modality=self.modality, on_error="skip")
        except Exception as exc:  # every caller of the batch sees the failure
            for _, done in batch:
                done.set_exception(exc)
            return
        failed = {f.index: f.reason for f in failures}
        good = iter(rows)
        for i, (_, done) in enumerate(batch):
            if i in failed:
                done.set_exception(InputError("text query", failed[i]))
            else:
                done.set_result(next(good))
