"""Errors of pretrained sources: each names the URL or repository and, for files, where they are or go."""

from __future__ import annotations

from ..errors import CheckpointError, OmniEmbedError


class DownloadError(OmniEmbedError):
    """A weight file could not be fetched completely (the partial file is kept so the next try resumes)."""


class OfflineError(DownloadError):
    """The server cannot be reached; the message says where to put the file by hand."""


class IntegrityError(DownloadError):
    """A downloaded or hand-placed file has the wrong size or sha256; a download that fails this leaves nothing."""


class UnknownSourceError(CheckpointError, KeyError):
    """A model name is neither a checkpoint directory nor a pretrained source."""

    def __str__(self) -> str:  # KeyError would quote the message
        return self.args[0]

