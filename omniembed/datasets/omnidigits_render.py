"""OmniDigits rendering: one planned sample → its files (png, wav, txt, mp4, ply, cls). Runs in pool workers.

* **video** — moving-MNIST style: the digit (28 × 28) drifts across a 64 × 64 canvas at 2.5–4 px/frame, bouncing
  off the edges, at 10 fps for max(1 s, the recording's length); H.264 (libx264, one thread and no macroblock
  tree, so the bytes depend on the frames only) with the spoken digit as a mono FLAC track: lossless, the
  recording's exact length (AAC pads it with a priming frame), and 5× cheaper to encode (2.4 vs 13 ms a second of
  8 kHz audio, PyAV; AAC was two fifths of rendering a sample). The video loader reads AAC tracks as well (tests).
* **point cloud** — the digit's ink lifted to 3-D by the sample's recipe (:mod:`.omnidigits_lifts`); binary
  little-endian PLY of float32 x, y, z.
* **audio** — synthetic recordings get a random margin of silence before and after the speech (they are trimmed to
  it; a recording is not), a random gain and white noise at a random SNR over the whole; real ones are stored as is.

Everything random is drawn from ``np.random.default_rng(task.seed)``, so a sample's files depend on its task only.
"""

from __future__ import annotations

import fractions
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .omnidigits_lifts import DEFAULT_LIFT, lift_digit, lift_recipe

VIDEO_SIZE, VIDEO_FPS, VIDEO_MIN_SECONDS = 64, 10, 1.0
VIDEO_SPEED = (2.5, 4.0)
"""Pixels per frame."""
SOURCE_SUFFIX = ".src"
"""A sample's {modality: source name} (JSON), beside its ``.cls``: what ``omniembed eval`` groups scores by."""
NOISE_SNR_DB, NOISE_GAIN = (10.0, 30.0), (0.5, 1.0)
NOISE_COLOUR = (0.0, 3.0)
"""Range of the exponent α of the noise's power spectrum ∝ f^−α (0: white, 1: pink, 2: brown, 3: steeper): a
room's and a microphone's noise lies mostly at low frequencies, where white noise would bury only the top mel
bins."""
SILENCE_MARGIN_SECONDS = (0.0, 0.3)
"""Range of the silence put before and, drawn apart, after a synthetic recording: a recorder starts before the
speaker and stops after, where a synthesiser's output is trimmed to the speech."""


@dataclass
class SampleTask:
    """Everything one sample's files are made from (picklable, for a process pool).

    ``images``: uint8 ``[28, 28]`` for the image, the video and the point cloud (three different scans of the
    class); ``waves``: float32 ``[T]`` for the audio file and the video's track (two different recordings), at
    ``sample_rate`` Hz, with ``synthetic_audio`` flagging each one that gets noise; ``lift``: the point-cloud
    recipe's name; ``extensions``: {modality: file extension} of the files to write; ``origins``: {modality:
    source name}, written as ``{key}.src`` (JSON).
    """

    directory: str
    key: str
    label: int
    caption: str
    extensions: dict[str, str]
    images: tuple[np.ndarray, np.ndarray, np.ndarray]
    waves: tuple[np.ndarray, np.ndarray] | None
    sample_rate: int
    synthetic_audio: tuple[bool, ...]
    seed: int
    lift: str = DEFAULT_LIFT
    origins: dict[str, str] = field(default_factory=dict)


def render_sample(task: SampleTask) -> None:
    """Write ``{directory}/{key}.{ext}`` for each modality in ``task.extensions``, plus ``{key}.cls`` and
    ``{key}.src``."""
    rng = np.random.default_rng(task.seed)
    stem = Path(task.directory) / task.key
    waves = None
    if task.waves is not None:
        waves = [augment(w, rng, task.sample_rate) if synthetic else w
                 for w, synthetic in zip(task.waves, task.synthetic_audio)]
    ext = task.extensions
    if "image" in ext:
        write_png(stem.with_suffix("." + ext["image"]), task.images[0])
    if "audio" in ext:
        write_wav(stem.with_suffix("." + ext["audio"]), waves[0], task.sample_rate)
    if "text" in ext:
        stem.with_suffix("." + ext["text"]).write_text(task.caption, encoding="utf-8")
    if "video" in ext:
        seconds = max(VIDEO_MIN_SECONDS, len(waves[1]) / task.sample_rate)
        frames = moving_digit_frames(task.images[1], int(np.ceil(seconds * VIDEO_FPS)), rng)
        write_mp4(stem.with_suffix("." + ext["video"]), frames, VIDEO_FPS, waves[1], task.sample_rate)
    if "pointcloud" in ext:
        points = lift_digit(task.images[2], rng, lift_recipe(task.lift))
        write_ply(stem.with_suffix("." + ext["pointcloud"]), points)
    stem.with_suffix(".cls").write_text(str(task.label), encoding="utf-8")
    stem.with_suffix(SOURCE_SUFFIX).write_text(json.dumps(task.origins, sort_keys=True), encoding="utf-8")


# ---- image and audio ----------------------------------------------------------------------------------------------
def write_png(path: Path, pixels: np.ndarray) -> None:
    """uint8 ``[H, W]`` → a greyscale PNG."""
    from PIL import Image

    Image.fromarray(pixels).save(path, format="PNG")


def augment(wave: np.ndarray, rng: np.random.Generator, sample_rate: int) -> np.ndarray:
    """float32 ``[T]`` at ``sample_rate`` Hz → ``[before + T + after]``: silent margins of
    :data:`SILENCE_MARGIN_SECONDS` around the speech scaled by a random gain, plus noise over all of it at a
    random SNR (dB) to the speech, its power spectrum ∝ f^−α with α drawn from :data:`NOISE_COLOUR`."""
    before, after = (int(rng.uniform(*SILENCE_MARGIN_SECONDS) * sample_rate) for _ in range(2))
    gain = rng.uniform(*NOISE_GAIN)
    snr_db = rng.uniform(*NOISE_SNR_DB)
    power = float(np.mean(wave.astype(np.float64) ** 2)) * gain ** 2
    padded = np.pad(gain * wave.astype(np.float64), (before, after))
    # α from a child generator: ``rng`` gives the same draws as for white noise, so the sample's video and cloud
    # drawn after it stay as they were
    noise = coloured_noise(len(padded), rng.spawn(1)[0].uniform(*NOISE_COLOUR), rng)
    noise *= np.sqrt(power / 10 ** (snr_db / 10))
    return np.clip(padded + noise, -1.0, 1.0).astype(np.float32)


def coloured_noise(n: int, alpha: float, rng: np.random.Generator) -> np.ndarray:
    """``[n]`` Gaussian noise of unit variance whose power spectrum falls as f^−``alpha``: white noise shaped in
    the frequency domain, the DC bin given the lowest frequency's gain (its offset, which the audio modality
    removes with each clip's mean, is part of the variance)."""
    freqs = np.fft.rfftfreq(n)
    freqs[0] = freqs[1] if n > 1 else 0.5
    shaped = np.fft.irfft(np.fft.rfft(rng.standard_normal(n)) * (freqs / 0.5) ** (-alpha / 2), n=n)
    std = float(shaped.std())
    return shaped / std if std > 0 else shaped


def write_wav(path: Path, wave: np.ndarray, sample_rate: int) -> None:
    """float32 ``[T]`` in [-1, 1] → 16-bit PCM mono WAV."""
    import soundfile as sf

    sf.write(path, wave, sample_rate, subtype="PCM_16", format="WAV")


# ---- video --------------------------------------------------------------------------------------------------------
def moving_digit_frames(digit: np.ndarray, n_frames: int, rng: np.random.Generator,
                        size: int = VIDEO_SIZE) -> np.ndarray:
    """uint8 ``[h, w]`` digit → uint8 ``[n_frames, size, size, 3]``: the digit moving in a straight line, bouncing."""
    h, w = digit.shape
    room = np.array([size - h, size - w], np.float64)
    position = rng.uniform(0, 1, 2) * room
    angle = rng.uniform(0, 2 * np.pi)
    velocity = rng.uniform(*VIDEO_SPEED) * np.array([np.sin(angle), np.cos(angle)])
    frames = np.zeros((n_frames, size, size), np.uint8)
    for t in range(n_frames):
        y, x = np.round(position).astype(int)
        frames[t, y:y + h, x:x + w] = digit
        position += velocity
        for axis in range(2):  # reflect off the canvas edges
            if position[axis] < 0 or position[axis] > room[axis]:
                velocity[axis] = -velocity[axis]
                mirror = 0.0 if position[axis] < 0 else room[axis]
                position[axis] = np.clip(2 * mirror - position[axis], 0, room[axis])
    return np.repeat(frames[..., None], 3, axis=-1)


def write_mp4(path: Path, frames: np.ndarray, fps: int, wave: np.ndarray, sample_rate: int) -> None:
    """uint8 ``[T, H, W, 3]`` frames at ``fps`` + float32 ``[N]`` audio at ``sample_rate`` → H.264/FLAC mp4."""
    import av

    with av.open(str(path), "w", format="mp4") as container:
        video = container.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        video.codec_context.thread_count = 1
        # macroblock-tree rate control made x264's bytes for 64 × 64 frames vary between processes; without it
        # the same frames always encode to the same file
        video.codec_context.options = {"preset": "veryfast", "crf": "18", "x264-params": "mbtree=0"}
        video.codec_context.time_base = fractions.Fraction(1, fps)
        track = container.add_stream("flac", rate=sample_rate)
        track.layout = "mono"
        pcm = np.round(np.clip(wave, -1.0, 1.0) * 32767).astype(np.int16)  # FLAC codes integer PCM
        for i, pixels in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            frame.pts, frame.time_base = i, fractions.Fraction(1, fps)
            container.mux(video.encode(frame))
        container.mux(video.encode())
        chunk = track.codec_context.frame_size or 1024
        for start in range(0, len(wave), chunk):
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(pcm[None, start:start + chunk]), format="s16",
                                               layout="mono")
            frame.sample_rate, frame.pts = sample_rate, start
            container.mux(track.encode(frame))
        container.mux(track.encode())


# ---- point cloud --------------------------------------------------------------------------------------------------
def write_ply(path: Path, points: np.ndarray) -> None:
    """float32 ``[N, 3]`` → binary little-endian PLY with float x, y, z per vertex."""
    header = ("ply\nformat binary_little_endian 1.0\ncomment OmniDigits point cloud\n"
              f"element vertex {len(points)}\nproperty float x\nproperty float y\nproperty float z\nend_header\n")
    with open(path, "wb") as f:
        f.write(header.encode("ascii"))
        f.write(np.ascontiguousarray(points, dtype="<f4").tobytes())
