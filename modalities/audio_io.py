"""Audio sources: a file (or an array) that reads sample windows on demand, so no file is ever read whole.

An :class:`AudioSource` knows its sample rate, length and channel count from the header alone and returns
``[C, n]`` float32 windows in ``[-1, 1]``. Memory is bounded by the windows asked for, not by the file: an
hour-long recording embeds by reading its 3 × 2 s clips (plus the resampler's margin).

Decoders: ``soundfile`` (libsndfile: wav, flac, ogg/vorbis/opus, mp3, aiff, …) reads every format it knows
with sample-exact seeking; everything else — AAC/m4a, the audio track of video containers — is read with PyAV
(ffmpeg), seeking to each window. ``librosa`` is not needed: for the formats libsndfile lacks it would go
through ``audioread``, deprecated since librosa 0.10, which re-decodes the file from its start for every window.
decord's ``AudioReader`` is not used either: decord 0.6 returns wrong samples for the second channel of planar
stereo AAC and corrupts memory when it resamples stereo (tests pin the stereo samples).
"""

from __future__ import annotations

import abc
import io
import os
from fractions import Fraction
from pathlib import Path

import numpy as np
import soundfile as sf

from omniembed.errors import EmptyInputError, InputError, UnreadableInputError

PREROLL_SECONDS = 0.5
"""PyAV seeks this far before a window: codecs with overlapping transforms (AAC, Opus, MP3) decode the first
packets after a seek wrongly, so they are decoded and dropped."""
PCM_SCALE = {"PCM_16": ("int16", 1 / 32768)}
"""Subtypes read as integers and scaled in numpy: identical values, ~4× faster than libsndfile's float path."""


class NoAudioTrackError(InputError):
    """A container (e.g. a video) was asked for audio but has no audio stream."""

    def __init__(self, source: str):
        super().__init__(source, "has no audio track")


class AudioSource(abc.ABC):
    """A seekable audio signal. ``read(start, stop)`` → float32 ``[channels, stop - start]`` (clipped to the end)."""

    name: str
    sample_rate: int
    frames: int
    channels: int

    @abc.abstractmethod
    def read(self, start: int, stop: int) -> np.ndarray:
        """Samples ``[start, stop)`` at :attr:`sample_rate`: a new, writable float32 ``[channels, n]`` array."""

    def read_into(self, start: int, stop: int, out: np.ndarray) -> None:
        """The same samples written into ``out`` (float32 ``[channels, m]``); columns the signal does not fill
        are set to 0. The caller's buffer is usually uninitialised (``np.empty``), and a header may promise more
        samples than the file holds (an Ogg whose last granule position overstates its length): leaving those
        columns alone let whatever the allocator returned reach the model, different in every run."""
        data = self.read(start, stop)
        out[:, : data.shape[1]] = data
        out[:, data.shape[1]:] = 0.0

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.name!r}, {self.sample_rate} Hz, {self.frames} samples, "
                f"{self.channels} ch)")


class ArraySource(AudioSource):
    """A waveform already in memory: ``[N]`` (mono) or ``[C, N]``."""

    def __init__(self, samples: np.ndarray, sample_rate: int, name: str = "<array>"):
        samples = np.asarray(samples)
        if samples.ndim == 1:
            samples = samples[None]
        if samples.ndim != 2:
            raise InputError(name, f"waveform must be [N] or [channels, N], got shape {samples.shape}")
        if samples.dtype.kind not in "fiu":
            raise InputError(name, f"waveform has non-numeric dtype {samples.dtype}")
        if samples.dtype.kind in "iu":  # integer PCM → [-1, 1]
            samples = samples.astype(np.float32) / np.float32(np.iinfo(samples.dtype).max + 1)
        self.samples = samples.astype(np.float32, copy=False)
        self.name, self.sample_rate = name, int(sample_rate)
        self.channels, self.frames = self.samples.shape

    def read(self, start: int, stop: int) -> np.ndarray:
        return self.samples[:, max(start, 0): min(stop, self.frames)].copy()


class SoundfileSource(AudioSource):
    """A file libsndfile reads (path or bytes), kept open while the source lives; reads seek to each window."""

    def __init__(self, file: str | Path | bytes, name: str):
        self.name = name
        try:
            self._file = sf.SoundFile(io.BytesIO(file) if isinstance(file, bytes) else str(file))
        except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
            raise UnreadableInputError(name, f"cannot decode audio ({exc})") from exc
        self.sample_rate, self.frames = int(self._file.samplerate), int(self._file.frames)
        self.channels = int(self._file.channels)
        self._dtype, self._scale = PCM_SCALE.get(self._file.subtype, ("float32", None))

    def read(self, start: int, stop: int) -> np.ndarray:
        start, stop = max(start, 0), min(stop, self.frames)
        try:
            self._file.seek(start)
            data = self._file.read(stop - start, dtype=self._dtype, always_2d=True)
        except (sf.LibsndfileError, RuntimeError) as exc:
            raise UnreadableInputError(self.name, f"cannot decode audio at sample {start} ({exc})") from exc
        if self._scale is not None:
            data = data.astype(np.float32)
            data *= np.float32(self._scale)
        return np.ascontiguousarray(data.T) if self.channels > 1 else data.reshape(1, -1)

    def read_into(self, start: int, stop: int, out: np.ndarray) -> None:
        if self._scale is None:
            return super().read_into(start, stop, out)
        start, stop = max(start, 0), min(stop, self.frames)
        try:
            self._file.seek(start)
            data = self._file.read(stop - start, dtype=self._dtype, always_2d=True)  # integers [n, C]
        except (sf.LibsndfileError, RuntimeError) as exc:
            raise UnreadableInputError(self.name, f"cannot decode audio at sample {start} ({exc})") from exc
        np.multiply(data.T, np.float32(self._scale), out=out[:, : data.shape[0]], casting="unsafe")
        out[:, data.shape[0]:] = 0.0  # a short read (see AudioSource.read_into)

    def close(self) -> None:
        self._file.close()


class PyAVSource(AudioSource):
    """The first audio stream of any container ffmpeg reads (m4a/aac, mp4/mkv/webm audio tracks, …).

    Windows are read by seeking to the nearest earlier packet and decoding forward, placing each decoded frame
    by its timestamp, so memory is bounded by the window and the cost by the window plus one packet.
    """

    def __init__(self, file: str | Path | bytes, name: str):
        import av

        self.file, self.name = file, name
        try:
            with av.open(self._handle()) as container:
                if not container.streams.audio:
                    raise NoAudioTrackError(name)
                stream = container.streams.audio[0]
                if stream.codec_context is None:
                    raise UnreadableInputError(name, "unsupported audio codec (ffmpeg has no decoder for it)")
                self.sample_rate = int(stream.codec_context.sample_rate or stream.rate or 0)
                self.channels = int(stream.codec_context.channels or len(stream.layout.channels))
                if stream.duration is not None and stream.time_base is not None:
                    seconds = Fraction(stream.duration) * stream.time_base
                elif container.duration is not None:
                    seconds = Fraction(container.duration, 1_000_000)
                else:
                    seconds = None
                self._start = Fraction(stream.start_time or 0) * (stream.time_base or 0)
        except InputError:
            raise
        except (av.error.FFmpegError, ValueError, OSError, IndexError) as exc:
            raise UnreadableInputError(name, f"cannot decode audio ({exc})") from exc
        if self.sample_rate <= 0:
            raise UnreadableInputError(name, "audio track has no sample rate")
        self.frames = int(seconds * self.sample_rate) if seconds is not None else self._count()

    def _handle(self) -> str | io.BytesIO:
        return io.BytesIO(self.file) if isinstance(self.file, bytes) else str(self.file)

    def _count(self) -> int:
        """Samples in the stream when the container states no duration (decodes once, keeps nothing)."""
        return sum(block.shape[1] for _, block in self._frames(0))

    def _frames(self, start: int):
        """(first sample index, float32 [C, n]) for each decoded frame from about ``start`` on."""
        import av

        try:
            with av.open(self._handle()) as container:
                stream = container.streams.audio[0]
                seconds = Fraction(start, self.sample_rate) - Fraction(PREROLL_SECONDS)
                if seconds > 0 and stream.time_base is not None:
                    container.seek(int((seconds + self._start) / stream.time_base), stream=stream, backward=True)
                position = None
                for frame in container.decode(stream):
                    if frame.pts is not None and frame.time_base is not None:
                        position = round((frame.pts * frame.time_base - self._start) * self.sample_rate)
                    elif position is None:
                        position = 0
                    block = _frame_samples(frame, self.channels)
                    yield position, block
                    position += block.shape[1]
        except (av.error.FFmpegError, ValueError, OSError) as exc:
            raise UnreadableInputError(self.name, f"cannot decode audio near sample {start} ({exc})") from exc

    def read(self, start: int, stop: int) -> np.ndarray:
        start, stop = max(start, 0), min(stop, self.frames)
        out = np.zeros((self.channels, max(stop - start, 0)), np.float32)
        for position, block in self._frames(start):
            if position >= stop:
                break
            a, b = max(start, position), min(stop, position + block.shape[1])
            if b > a:
                out[:, a - start: b - start] = block[:, a - position: b - position]
        return out


def _frame_samples(frame, channels: int) -> np.ndarray:
    """One decoded PyAV audio frame → float32 [C, n] in [-1, 1], whatever its sample format."""
    data = frame.to_ndarray()
    if not frame.format.is_planar:  # packed: [1, n·C] interleaved
        data = data.reshape(-1, channels).T
    if data.dtype.kind in "iu":
        if data.dtype == np.uint8:
            return (data.astype(np.float32) - 128) / np.float32(128)
        return data.astype(np.float32) / np.float32(np.iinfo(data.dtype).max + 1)
    return data.astype(np.float32, copy=False)


def open_audio(file: str | os.PathLike | bytes, suffix: str = "", name: str | None = None) -> AudioSource:
    """The source for a path or a file's bytes: soundfile when libsndfile reads it, else PyAV.

    Raises :class:`UnreadableInputError` (corrupt file, unsupported codec), :class:`NoAudioTrackError` (a
    container with no audio track) or :class:`EmptyInputError` (no samples), each naming the file.
    """
    if not isinstance(file, bytes):
        file = Path(file)
        suffix = suffix or file.suffix
    name = name or (str(file) if isinstance(file, Path) else f"<{len(file)} bytes{' ' + suffix if suffix else ''}>")
    try:
        source: AudioSource = SoundfileSource(file, name)
    except UnreadableInputError as first:
        try:
            source = PyAVSource(file, name)
        except UnreadableInputError as second:
            raise UnreadableInputError(name, f"unsupported or corrupt audio (libsndfile: {first.reason}; "
                                             f"ffmpeg: {second.reason})") from second
    if source.frames <= 0:
        raise EmptyInputError(name, "audio has no samples")
    return source
