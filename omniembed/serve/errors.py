"""Errors of the search server; each names the request's input (an item id, an upload) and the problem."""

from __future__ import annotations

from ..errors import OmniEmbedError


class ServeError(OmniEmbedError):
    """Base of the server's own errors: ``where`` names the item or upload concerned."""

    def __init__(self, where: str, reason: str):
        self.where = where
        self.reason = reason
        super().__init__(f"{where}: {reason}")


class ItemNotFoundError(ServeError, LookupError):
    """No live, published row of the index has this id."""


class ItemUnavailableError(ServeError):
    """The item is indexed but its file is gone or can no longer be read (the index is older than the file)."""


class UploadTooLargeError(ServeError):
    """An upload (or a request body) is over the server's size limit."""


class UnauthorizedError(ServeError):
    """The server was started with a token and the request does not carry it."""
