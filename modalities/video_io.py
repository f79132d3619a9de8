"""Reading video files: frame timestamps and frames at chosen times with decord; the audio track with PyAV.

Frames are chosen by their presentation timestamps (decord's ``get_frame_timestamp``), never by index × average
frame rate, so variable-frame-rate files sample the right moments. Only the chosen frames are decoded.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from omniembed.errors import EmptyInputError, UnreadableInputError


@dataclass
class VideoFile:
    """An opened video: ``timestamps`` float64 ``[n, 2]`` (start, end of each frame, seconds) and its reader."""

    path: Path
    timestamps: np.ndarray
    reader: object

    @property
    def name(self) -> str:
        return str(self.path)

    @property
    def n_frames(self) -> int:
        return len(self.timestamps)

    @property
    def duration(self) -> float:
        """Seconds from the first frame's start to the last frame's end."""
        return float(self.timestamps[-1, 1] - self.timestamps[0, 0])

    def frames(self, indices: list[int]) -> np.ndarray:
        """uint8 ``[len(indices), H, W, 3]`` RGB."""
        import decord

        try:
            return self.reader.get_batch(list(indices)).asnumpy()
        except (decord.DECORDError, RuntimeError) as exc:
            raise UnreadableInputError(self.name, f"cannot decode frames {list(indices)} ({_first_line(exc)})") from exc


def open_video(path: Path) -> VideoFile:
    """Open ``path`` with decord and read its frame timestamps (metadata only; no frame is decoded).

    Raises :class:`EmptyInputError` when the file has no video stream or a stream with no frames, and
    :class:`UnreadableInputError` for a corrupt container or an unsupported codec; both name the file.
    """
    import decord

    try:
        reader = decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=1)
    except (decord.DECORDError, RuntimeError) as exc:  # tell "no frames" from "corrupt"
        frames = _count_decodable_frames(path)
        if frames == 0:
            raise EmptyInputError(str(path), "video has no frames (no video stream, or one with zero frames)") from exc
        raise UnreadableInputError(str(path), f"cannot decode video ({_first_line(exc)})") from exc
    if len(reader) == 0:
        raise EmptyInputError(str(path), "video has no frames")
    timestamps = np.asarray(reader.get_frame_timestamp(np.arange(len(reader))), dtype=np.float64).reshape(-1, 2)
    return VideoFile(path, timestamps, reader)


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


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__

