"""Video frames with PyAV (ffmpeg): the decoder on every platform, used when decord is absent or asked for.

**Opening** demuxes the video stream's packets without decoding any, for each frame's presentation time, duration
and keyframe flag; frame i is the i-th packet in presentation order. A frame's start is its presentation time
minus the stream's start time; its end is the start plus the packet's duration, or the next frame's start when
the packet states none (the last frame then lasts one average frame period). decord differs only in some end
times, and :func:`~.video_io.clip_frame_indices` reads just the last frame's end.

**Reading** frames groups the wanted ones by the keyframe at or before them, seeks to each such keyframe and
decodes forward to the group's last wanted frame: one group of pictures is decoded per group of wanted frames, as
decord does. RGB conversion is ffmpeg's (swscale), as decord's.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from omniembed.errors import EmptyInputError, InputError, UnreadableInputError

from .video_file import VideoFile, first_line


@dataclass
class PyAVFrames:
    """Frames of ``path``'s first video stream by presentation-order index: ``pts`` int64 ``[n]`` (ascending, in the
    stream's time base) and ``keyframes`` bool ``[n]``."""

    path: Path
    pts: np.ndarray
    keyframes: np.ndarray

    def frames(self, indices: list[int]) -> np.ndarray:
        """uint8 ``[len(indices), H, W, 3]`` RGB."""
        import av

        keys = np.flatnonzero(self.keyframes)
        groups: dict[int, list[int]] = {}
        for i in sorted(set(indices)):
            before = int(np.searchsorted(keys, i, side="right")) - 1
            groups.setdefault(int(keys[before]) if before >= 0 else 0, []).append(i)
        found: dict[int, np.ndarray] = {}
        try:
            with av.open(str(self.path)) as container:
                stream = container.streams.video[0]
                for key, members in groups.items():
                    found.update(self._decode_group(container, stream, key, members))
        except (av.error.FFmpegError, ValueError, OSError) as exc:
            raise UnreadableInputError(str(self.path), f"cannot decode frames {indices} ({first_line(exc)})") from exc
        missing = sorted(set(indices) - set(found))
        if missing:
            raise UnreadableInputError(str(self.path), f"frames {missing} could not be decoded (no decoded picture "
                                                       f"has their timestamps)")
        return np.stack([found[i] for i in indices])

    def _decode_group(self, container, stream, key: int, members: list[int]) -> dict[int, np.ndarray]:
        """Seek to keyframe ``key`` and decode forward until every frame of ``members`` is found (or passed)."""
        targets = {int(self.pts[i]): i for i in members}
        last = max(targets)
        container.seek(int(self.pts[key]), stream=stream, backward=True)
        out = {}
        for frame in container.decode(stream):
            if frame.pts is None:
                continue
            if frame.pts in targets:
                out[targets[frame.pts]] = frame.to_ndarray(format="rgb24")
            if frame.pts >= last:
                break
        return out


def open_with_pyav(path: Path) -> VideoFile:
    """Open ``path`` with PyAV and read its frame timestamps from the packets (no frame is decoded).

    Raises :class:`EmptyInputError` (no video stream, or one without frames) and :class:`UnreadableInputError`
    (corrupt container, unsupported codec, packets without timestamps), naming the file.
    """
    import av

    name = str(path)
    try:
        with av.open(name) as container:
            if not container.streams.video:
                raise EmptyInputError(name, "video has no frames (no video stream)")
            stream = container.streams.video[0]
            if stream.codec_context is None:
                raise UnreadableInputError(name, "unsupported video codec (ffmpeg has no decoder for it)")
            packets = [(p.pts if p.pts is not None else p.dts, p.duration or 0, p.is_keyframe)
                       for p in container.demux(stream) if p.size]
            time_base = stream.time_base
            start = stream.start_time
            rate = stream.average_rate or stream.guessed_rate
    except InputError:
        raise
    except (av.error.FFmpegError, ValueError, OSError, IndexError) as exc:
        raise UnreadableInputError(name, f"cannot decode video ({first_line(exc)})") from exc
    if not packets:
        raise EmptyInputError(name, "video has no frames (its video stream holds none)")
    if time_base is None or any(pts is None for pts, _, _ in packets):
        raise UnreadableInputError(name, "video packets carry no timestamps, so frames cannot be found by time "
                                         "(decord may read it: video.decoder 'decord')")
    packets.sort(key=lambda p: p[0])
    pts = np.array([p[0] for p in packets], dtype=np.int64)
    return VideoFile(path, frame_times(pts, [p[1] for p in packets], time_base, start, rate),
                     PyAVFrames(path, pts, np.array([p[2] for p in packets], dtype=bool)))


def frame_times(pts: np.ndarray, durations: list[int], time_base: Fraction, start: int | None,
                rate: Fraction | None) -> np.ndarray:
    """float64 ``[n, 2]`` (start, end) seconds of frames with ascending ``pts`` and packet ``durations`` (0: not
    stated), in ``time_base`` units, relative to the stream's ``start``; ``rate`` (frames per second) sets the
    length of a last frame without a duration."""
    tb = float(time_base)
    starts = (pts - (start if start is not None else pts[0])).astype(np.float64) * tb
    lengths = np.asarray(durations, dtype=np.float64) * tb
    following = np.append(starts[1:], starts[-1] + (1 / float(rate) if rate else 0.0))
    ends = np.where(lengths > 0, starts + lengths, following)
    return np.stack([starts, ends], axis=1)
