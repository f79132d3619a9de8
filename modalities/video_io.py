"""Reading video files: frame timestamps and the frames at chosen times, with decord or PyAV.

Frames are chosen by their presentation timestamps, never by index × average frame rate, so variable-frame-rate
files sample the right moments. Only the chosen frames are decoded. Two decoders, named in :data:`VIDEO_DECODERS`
(``video.decoder`` in a model config): ``"decord"`` (its ``get_batch``; wheels only for x86-64 Linux, Windows and
Intel macOS, installed by the ``video`` extra where they exist) and ``"pyav"`` (:mod:`.video_pyav`: ffmpeg through
PyAV, a core dependency, on every platform). ``"auto"`` takes decord when it imports, else PyAV. Both give the same
frames up to the colour conversion's rounding; decord's frame end times are its own (see :mod:`.video_pyav`).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Callable

import numpy as np

from omniembed.errors import ConfigError, EmptyInputError, UnreadableInputError
from omniembed.extras import optional, require

from .video_file import VideoFile, first_line
from .video_pyav import open_with_pyav


@dataclass
class DecordFrames:
    """Frames through a decord ``VideoReader`` (seeks to the keyframe before each wanted frame)."""

    path: Path
    reader: object

    def frames(self, indices: list[int]) -> np.ndarray:
        decord = _decord()
        try:
            return self.reader.get_batch(indices).asnumpy()
        except (decord.DECORDError, RuntimeError) as exc:
            raise UnreadableInputError(str(self.path), f"cannot decode frames {indices} ({first_line(exc)})") from exc


def open_with_decord(path: Path) -> VideoFile:
    """Open ``path`` with decord and read its frame timestamps (metadata only; no frame is decoded)."""
    _decord()  # PyAV loaded first (see there)
    decord = require("decord", "the decord video decoder (video.decoder: decord)")
    try:
        reader = decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=1)
    except (decord.DECORDError, RuntimeError) as exc:  # tell "no frames" from "corrupt"
        frames = _count_decodable_frames(path)
        if frames == 0:
            raise EmptyInputError(str(path), "video has no frames (no video stream, or one with zero frames)") from exc
        raise UnreadableInputError(str(path), f"cannot decode video ({first_line(exc)})") from exc
    if len(reader) == 0:
        raise EmptyInputError(str(path), "video has no frames")
    timestamps = np.asarray(reader.get_frame_timestamp(np.arange(len(reader))), dtype=np.float64).reshape(-1, 2)
    return VideoFile(path, timestamps, DecordFrames(path, reader))


VIDEO_DECODERS: dict[str, Callable[[Path], VideoFile]] = {"decord": open_with_decord, "pyav": open_with_pyav}
"""Decoder name → the function opening a file with it. ``"auto"`` (not a key) picks decord when it imports."""


def open_video(path: Path, decoder: str = "auto") -> VideoFile:
    """Open ``path`` with ``decoder`` (a key of :data:`VIDEO_DECODERS`, or ``"auto"``) and read its frame
    timestamps (metadata only; no frame is decoded).

    Raises :class:`EmptyInputError` when the file has no video stream or a stream with no frames, and
    :class:`UnreadableInputError` for a corrupt container or an unsupported codec; both name the file.
    """
    return VIDEO_DECODERS[resolve_decoder(decoder)](Path(path))


def resolve_decoder(decoder: str) -> str:
    """``"auto"`` → ``"decord"`` when decord imports, else ``"pyav"``; a named decoder is checked and kept."""
    if decoder == "auto":
        return "decord" if _decord() is not None else "pyav"
    if decoder not in VIDEO_DECODERS:
        raise ConfigError(f"video.decoder '{decoder}' is not one of {['auto', *VIDEO_DECODERS]}")
    return decoder


@cache
def _decord() -> ModuleType | None:
    # cached: a failed import scans sys.path again on every call, and auto asks once per file.
    # PyAV first: decord's wheel bundles an older FFmpeg whose libraries, loaded before PyAV's, shadow them (PyAV's
    # libvpx encoder then fails to open: EINVAL)
    import av  # noqa: F401

    return optional("decord")


def _count_decodable_frames(path: Path, limit: int = 1) -> int | None:
    """Frames PyAV decodes from the first video stream (stops at ``limit``); 0 without a video stream;
    None when PyAV cannot open the file either."""
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                return 0
            count = 0
            for _ in container.decode(container.streams.video[0]):
                count += 1
                if count >= limit:
                    break
            return count
    except (av.error.FFmpegError, ValueError, OSError):
        return None


def clip_frame_indices(timestamps: np.ndarray, n_clips: int, clip_seconds: float,
                          frames_per_clip: int) -> list[list[int]]:
    """Frame indices ``[n_clips][frames_per_clip]``: clip k starts at k·(duration − clip)/(K − 1) s (as audio
    and ImageBind), and its frames are spread uniformly (pytorchvideo's ``UniformTemporalSubsample``: indices
    ``floor(linspace(0, m − 1, F))``) over the m frames whose start time lies in the clip. A clip that no frame
    starts in (a gap in a variable-rate file) takes the frame on screen at its start. A video shorter than one
    clip gives K clips over the whole video.
    """
    starts = timestamps[:, 0] - timestamps[0, 0]
    duration = float(timestamps[-1, 1] - timestamps[0, 0])
    max_start = Fraction(max(duration - Fraction(clip_seconds), 0))
    step = max_start / max(n_clips - 1, 1)
    out = []
    for k in range(n_clips):
        a = float(step * k)
        b = a + clip_seconds
        inside = np.nonzero((starts >= a - 1e-9) & (starts < b - 1e-9))[0]
        if len(inside) == 0:
            inside = np.array([max(int(np.searchsorted(starts, a, side="right")) - 1, 0)])
        picks = np.floor(np.linspace(0, len(inside) - 1, frames_per_clip)).astype(int)
        out.append([int(inside[p]) for p in picks])
    return out
