"""Errors of the retrieval index; each names the index (or file) and the problem."""

from __future__ import annotations

from ..errors import OmniEmbedError


class RetrievalIndexError(OmniEmbedError):
    """Base of the index's errors: ``where`` names the index directory or file."""

    def __init__(self, where: str, reason: str):
        self.where = where
        self.reason = reason
        super().__init__(f"{where}: {reason}")


class ModelMismatchError(RetrievalIndexError):
    """The index was built with a different model (fingerprints differ) than the one asked to query or extend it."""


class IndexNotFoundError(RetrievalIndexError, FileNotFoundError):
    """The directory holds no index."""


class IndexCorruptError(RetrievalIndexError):
    """An index file cannot be read or does not fit the rest of the index."""


class IndexBusyError(RetrievalIndexError):
    """Another process is writing to the index (only one writer at a time; readers are never blocked)."""


class NonFiniteVectorError(RetrievalIndexError):
    """A vector to store holds NaN or Inf: it would match no query (faiss ranks it nowhere) and hide the file."""
