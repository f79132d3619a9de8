"""Exception classes. Every error names the input (file, key, modality) and the reason."""

from __future__ import annotations


class OmniEmbedError(Exception):
    """Base class of every error OmniEmbed raises on purpose."""


class ConfigError(OmniEmbedError, ValueError):
    """A configuration is malformed: unknown key, wrong type, unknown name."""


class InputError(OmniEmbedError, ValueError):
    """One input cannot be embedded. ``source`` names it (a path or a short repr)."""

    def __init__(self, source: str, reason: str):
        self.source = source
        self.reason = reason
        super().__init__(f"{source}: {reason}")


class UnreadableInputError(InputError):
    """The input exists but cannot be decoded (corrupt, truncated, unsupported codec)."""


class TooManyPixelsError(InputError):
    """An image's header declares more pixels than the limit (a decompression bomb): refused before decoding."""


class NonFiniteEmbeddingError(InputError):
    """The model turned this input into a vector holding NaN or Inf (bad weights, or values that overflow)."""


class MissingInputError(InputError, FileNotFoundError):
    """The input names a path that does not exist."""


class UnknownSuffixError(InputError):
    """A file's suffix maps to no registered modality."""


class EmptyInputError(InputError):
    """Nothing to embed: an empty list, an empty string, an empty point cloud."""


class MissingModalityError(OmniEmbedError, KeyError):
    """The model has no encoder for the requested modality."""

    def __init__(self, modality: str, available: list[str]):
        self.modality = modality
        self.available = available
        super().__init__(f"model has no '{modality}' encoder (it has: {', '.join(sorted(available))})")

    def __str__(self) -> str:  # KeyError would quote the message
        return self.args[0]


class CheckpointError(OmniEmbedError):
    """A checkpoint directory is missing files or its weights do not match its config."""


class OutputError(OmniEmbedError):
    """A result cannot be written where asked: a folder that cannot be made, no permission, a full disk."""

    def __init__(self, target: str, reason: str):
        self.target = target
        self.reason = reason
        super().__init__(f"cannot write {target}: {reason}")


class OutputExistsError(OmniEmbedError, FileExistsError):
    """A write would replace or mix with something already at its target (a file, a user's folder, a model)."""

    def __init__(self, target: str, reason: str):
        self.target = target
        self.reason = reason
        super().__init__(f"{target}: {reason}")


class MissingExtraError(OmniEmbedError, ImportError):
    """A feature needs an optional dependency that is not installed (or fails to import); names the extra."""

    def __init__(self, feature: str, module: str, extra: str, cause: str = ""):
        self.feature, self.module, self.extra = feature, module, extra
        because = f" ({cause})" if cause else ""
        super().__init__(f"{feature} needs the optional package '{module}', which cannot be imported{because}: "
                         f"pip install 'omniembed[{extra}]'")
        self._cause = cause

    def __reduce__(self):  # raised in worker processes (dataset rendering) and sent back pickled
        return type(self), (self.feature, self.module, self.extra, self._cause)
