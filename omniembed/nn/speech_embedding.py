"""Google's speech embedding (Lin et al. 2020, "Training keyword spotters with limited and synthesized speech
data") as a frozen audio front end, with a small trainable head on top.

The network was trained by Google on a large body of real speech to map 0.775 s of 16 kHz audio to one 96-d
vector; its authors and openWakeWord train word detectors on top of it from synthesised speech alone, and those
detectors hold on real voices. A tower learnt from scratch on synthetic voices does not: on OmniDigits with the
real recordings (FSDD) left out of training, the time-delay network bound to the image anchor reached 64.3 %
zero-shot on them and this front end under the same binding 95.5 % (README, "Out-of-source transfer").

* **features** (:class:`SpeechLogMel`) — each clip scaled to one RMS level and centred in the window (the
  network was trained on words in the middle of its 0.775 s; a linear probe on FSDD held out fell from 94 % to
  28–45 % with clips placed at the start), then the front end's own log-mel: 16 kHz audio at 16-bit scale, 512-point
  STFT of a 400-sample periodic Hann window every 160 samples (no centring), power, 32 Slaney mel bands over
  60–3800 Hz, 10·log10 (floor 1e-10), each clip floored 80 dB below its loudest cell, then ``x / 10 + 2`` —
  computed here, equal to openWakeWord's ``melspectrogram.onnx`` to float rounding (tests).
* **trunk** (:class:`SpeechEmbeddingTrunk`) — the frozen convolutions over windows of :data:`WINDOW_FRAMES`
  frames every ``step`` frames (``[W, 96]`` per clip; one pass over the clip computes the windows' overlap once:
  4 windows of a 130-frame clip cost ~1/3 of running them one by one), then a trainable LayerNorm, Linear + ReLU
  of ``width`` per window (0: the LayerNorm alone) and mean ‖ max over the windows.

The frozen weights are read from ``embedding_model.onnx`` inside the installed ``openwakeword`` package (0.5.x
ships it; ``pip install 'omniembed[speech]'``) or from a given path, and travel in an exported model's weights
(buffers: they are never trained), so loading a trained model needs neither the package nor the file. Licence:
Google published the speech embedding on TF Hub under Apache-2.0; openWakeWord's README puts the models its wheel
bundles under CC BY-NC-SA 4.0 — a model that carries these weights carries that question with it.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
import torchaudio
from torch import nn

from ..config import check_choices
from ..errors import ConfigError
from ..extras import require
from .native_dtypes import runs_natively
from .tokens import Tokens

SAMPLE_RATE = 16000
N_MELS = 32
N_FFT, WINDOW_SAMPLES, HOP = 512, 400, 160
F_MIN, F_MAX = 60.0, 3800.0
TOP_DB = 80.0
PCM_SCALE = 32767.0
"""Waveforms in [-1, 1] are scaled to 16-bit sample values, the front end's input units."""
RMS_LEVEL = 0.1
"""Every clip is scaled to this RMS (−20 dB of full scale) first: the front end's log-mel is absolute, so a source
recorded louder or quieter would otherwise differ in every cell."""
WINDOW_FRAMES = 76
"""Frames one embedding sees (0.775 s)."""
STRIDE = 8
"""The network's stride in time (three 2× max-pools): run over a longer sequence, its convolutions (none padded in
time) give the embedding of every window that starts a multiple of 8 frames in, at once."""
EMBED_DIM = 96
LEAK, FLOOR = 0.2, -0.4
"""Each convolution is followed by LeakyReLU(0.2) and max(·, −0.4)."""

# (output channels, kernel (time, mel)); a 1 × 3 kernel pads the mel axis by 1. Max-pooling (time, mel) follows
# the layers named in POOLS; the last convolution has no bias and no activation.
LAYERS: tuple[tuple[int, tuple[int, int]], ...] = (
    (24, (3, 3)), (24, (1, 3)), (24, (3, 1)),
    (48, (1, 3)), (48, (3, 1)), (48, (1, 3)), (48, (3, 1)),
    (72, (1, 3)), (72, (3, 1)), (72, (1, 3)), (72, (3, 1)),
    (96, (1, 3)), (96, (3, 1)), (96, (1, 3)), (96, (3, 1)),
    (96, (1, 3)), (96, (3, 1)), (96, (1, 3)), (96, (3, 1)),
    (96, (3, 1)),
)
POOLS = {2: (2, 2), 6: (1, 2), 10: (2, 2), 14: (1, 2), 18: (2, 2)}
ONNX_FILE = "embedding_model.onnx"
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
"""``precision`` → the frozen convolutions' dtype ("auto" chooses one of them per device)."""
RELEASE_URL = "https://github.com/dscripka/openWakeWord/releases/download/v0.5.1/embedding_model.onnx"
"""The same network as openWakeWord publishes it beside its release 0.5.1: used when no installed openwakeword
package carries the file (its tflite-runtime dependency has no wheels past Python 3.11). No digest is published;
:func:`read_onnx_weights` checks every convolution's shape."""
DOWNLOAD_NAME = "openwakeword-0.5.1-embedding_model.onnx"


@dataclass
class SpeechEmbeddingConfig:
    """The frozen front end's ``weights`` ("openwakeword": the installed package's file, or a path to an
    ``embedding_model.onnx``), the trainable per-window layer's ``width`` (0: pool the 96-d vectors directly) and
    the ``step`` in frames between windows (a multiple of 8). ``weights_in_checkpoint``: set when a model is saved,
    the frozen weights then come from its weight file."""

    TAG: ClassVar[str] = "speech_embedding"

    weights: str = "openwakeword"
    width: int = 256
    step: int = 8
    precision: Literal["fp32", "bf16", "auto"] = "fp32"
    """The frozen convolutions' dtype (the names of ``train.precision``). "auto": bf16 where the device runs it in
    hardware (an NVIDIA GPU from Ampere, another GPU; a CPU with oneDNN's bf16 instructions, see
    :func:`~omniembed.nn.native_dtypes.runs_natively`),
    else fp32. bf16 takes a 64-clip batch of 130 frames from 0.21 to 0.094 s on 2 AVX-512 cores; its vectors differ
    from fp32's by up to ~1 % of their largest entry (tests), and the LayerNorm after them absorbs that (bound alone
    on OmniDigits with FSDD held out, the whole binding under bf16: held-out FSDD 95.1 % against 95.5 %)."""
    weights_in_checkpoint: bool = False

    def validate(self, where: str) -> None:
        check_choices(self, where)
        if self.width < 0:
            raise ConfigError(f"{where}.width must be >= 0, got {self.width}")
        if self.step <= 0 or self.step % STRIDE:
            raise ConfigError(f"{where}.step must be a positive multiple of {STRIDE} (the network's stride in time), "
                              f"got {self.step}")


def onnx_weights_path(weights: str) -> Path:
    """``"openwakeword"`` → the ``embedding_model.onnx`` inside the installed package, else the copy openWakeWord
    publishes with its release 0.5.1 (:data:`RELEASE_URL`), downloaded once into the cache; else the path itself."""
    if weights != "openwakeword":
        path = Path(weights).expanduser()
        if not path.is_file():
            raise ConfigError(f"audio.tower.weights: {path} is not a file")
        return path
    return _bundled_file() or _downloaded_file()


def _bundled_file() -> Path | None:
    """The file inside the installed openwakeword package (0.5.x ships it), or None."""
    spec = importlib.util.find_spec("openwakeword")  # located, not imported: its own imports are not needed
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "resources" / "models" / ONNX_FILE
    return path if path.is_file() else None


def _downloaded_file() -> Path:
    """:data:`RELEASE_URL` in the download cache (fetched on first use; a file placed there by hand is used)."""
    from ..pretrained.cache import cache_lock, downloads_dir
    from ..pretrained.download import fetch
    from ..pretrained.errors import DownloadError

    dest = downloads_dir() / DOWNLOAD_NAME
    with cache_lock("speech-embedding"):
        if dest.is_file():
            return dest
        try:
            fetch(RELEASE_URL, dest)
        except DownloadError as exc:
            raise ConfigError(f"audio.tower speech_embedding: Google's speech embedding is in no installed "
                              f"openwakeword package and could not be downloaded ({exc}). Install it with pip install "
                              f"'omniembed[speech]' (Python >= 3.12: pip install --no-deps openwakeword==0.5.1), or "
                              f"put {RELEASE_URL} at {dest}") from exc
        try:
            read_onnx_weights(dest)  # with no published digest, the network's shapes tell a wrong file apart
        except ConfigError as exc:
            dest.unlink()
            raise ConfigError(f"{RELEASE_URL}: {exc}; the download was deleted") from exc
    return dest


def read_onnx_weights(path: Path) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
    """The (weight ``[out, in, kh, kw]``, bias ``[out]`` or None) of every convolution of ``embedding_model.onnx``,
    in :data:`LAYERS` order, checked against it."""
    onnx = require("onnx", "the speech-embedding audio front end")
    from onnx import numpy_helper

    try:
        graph = onnx.load(str(path)).graph
    except Exception as exc:  # protobuf's DecodeError and OSError alike: the file is unusable either way
        raise ConfigError(f"{path}: not a readable ONNX model ({type(exc).__name__}: {exc})") from exc
    tensors = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    layers: list[tuple[torch.Tensor, torch.Tensor | None]] = []
    for node in (n for n in graph.node if n.op_type == "Conv"):
        weight = torch.from_numpy(tensors[node.input[1]].copy())
        bias = torch.from_numpy(tensors[node.input[2]].copy()) if len(node.input) > 2 else None
        layers.append((weight, bias))
    expected = _shapes()
    found = [tuple(w.shape) for w, _ in layers]
    if found != expected:
        raise ConfigError(f"{path}: not Google's speech embedding (convolutions {found}, expected {expected})")
    return layers


def _shapes() -> list[tuple[int, int, int, int]]:
    shapes, channels = [], 1
    for out, (kh, kw) in LAYERS:
        shapes.append((out, channels, kh, kw))
        channels = out
    return shapes


class SpeechEmbeddingTrunk(nn.Module):
    """Tokens(features ``[B, 1, 32, T]`` from :class:`SpeechLogMel`, T ≥ 76) → Tokens(``[B, 1, 2 · F]``): the
    frozen embedding of each window ``[B, W, 96]``, W = (T − 76) // step + 1, the trainable layer (F = ``width``,
    or 96 without it), mean ‖ max over the windows. ``width`` is the pooled size."""

    def __init__(self, config: SpeechEmbeddingConfig):
        super().__init__()
        config.validate("audio.tower")
        self.step = config.step
        self.precision = config.precision
        loaded = None if config.weights_in_checkpoint else read_onnx_weights(onnx_weights_path(config.weights))
        for i, shape in enumerate(_shapes()):
            weight = torch.zeros(shape) if loaded is None else loaded[i][0]
            self.register_buffer(f"conv{i}_weight", weight)
            if i < len(LAYERS) - 1:
                bias = torch.zeros(shape[0]) if loaded is None else loaded[i][1]
                self.register_buffer(f"conv{i}_bias", bias)
        # the frozen vectors run to magnitudes of ~60: a LayerNorm brings each to unit scale before the layer
        self.project = (nn.Sequential(nn.LayerNorm(EMBED_DIM), nn.Linear(EMBED_DIM, config.width), nn.ReLU())
                        if config.width else nn.LayerNorm(EMBED_DIM))
        self.width = 2 * (config.width or EMBED_DIM)

    def embed_windows(self, windows: torch.Tensor) -> torch.Tensor:
        """``[N, 1, 76, 32]`` (time, mel) → ``[N, 96]``: the frozen network on single windows."""
        return self.embed_sequence(windows)[:, 0]

    def compute_dtype(self, frames: torch.Tensor) -> torch.dtype:
        """The frozen convolutions' dtype for ``frames`` (under autocast, the autocast dtype)."""
        if torch.is_autocast_enabled(frames.device.type):
            return torch.get_autocast_dtype(frames.device.type)
        if self.precision == "auto":
            return torch.bfloat16 if runs_natively(frames.device, torch.bfloat16) else torch.float32
        return DTYPES[self.precision]

    def embed_sequence(self, frames: torch.Tensor) -> torch.Tensor:
        """``[N, 1, T, 32]`` (time, mel), T ≥ 76 → ``[N, (T − 76) // 8 + 1, 96]`` in ``frames``' dtype: the
        embedding of every window starting at a multiple of :data:`STRIDE` frames, in one pass (the windows'
        overlap is computed once), computed in :meth:`compute_dtype`."""
        x = frames.to(self.compute_dtype(frames))
        last = len(LAYERS) - 1
        for i, (_, (_, kw)) in enumerate(LAYERS):
            weight = getattr(self, f"conv{i}_weight").to(x.dtype)
            bias = None if i == last else getattr(self, f"conv{i}_bias").to(x.dtype)
            x = F.conv2d(x, weight, bias, padding=(0, 1 if kw == 3 else 0))
            if i == last:
                break
            x = F.leaky_relu(x, LEAK).clamp(min=FLOOR)
            if i in POOLS:
                x = F.max_pool2d(x, POOLS[i])
        return x.squeeze(3).transpose(1, 2).to(frames.dtype)  # [N, 96, P, 1] → [N, P, 96]

    def forward(self, x: Tokens) -> Tokens:
        feats = x.tokens.flatten(1, 2)  # [B, 1, 32, T] → [B, 32, T]
        b, mels, frames = feats.shape
        if mels != N_MELS or frames < WINDOW_FRAMES:
            raise ValueError(f"speech embedding: expected [B, 1, {N_MELS}, T ≥ {WINDOW_FRAMES}] features, got "
                             f"{tuple(x.tokens.shape)}")
        every = self.embed_sequence(feats.transpose(1, 2).unsqueeze(1))   # [B, (T − 76) // 8 + 1, 96]
        vectors = self.project(every[:, :: self.step // STRIDE])          # [B, W, F]
        return Tokens(torch.cat([vectors.mean(dim=1), vectors.amax(dim=1)], dim=-1).unsqueeze(1))


class SpeechLogMel(nn.Module):
    """Clip waveforms at 16 kHz → the front end's features ``[M, 1, 32, target_frames]`` (see the module notes).
    No learned weights: the window and mel matrix are computed."""

    def __init__(self):
        super().__init__()
        pad = (N_FFT - WINDOW_SAMPLES) // 2
        self.register_buffer("window", F.pad(torch.hann_window(WINDOW_SAMPLES, periodic=True), (pad, pad)),
                             persistent=False)
        self.register_buffer("mel", torchaudio.functional.melscale_fbanks(
            N_FFT // 2 + 1, F_MIN, F_MAX, N_MELS, SAMPLE_RATE, norm="slaney", mel_scale="slaney"), persistent=False)

    def forward(self, clips: list[torch.Tensor], target_frames: int) -> torch.Tensor:
        """M waveforms ``[n_i]`` → ``[M, 1, 32, target_frames]``: each clip scaled to an RMS of :data:`RMS_LEVEL`
        and centred in (or cut about its middle to) the ``N_FFT + HOP · (target_frames − 1)`` samples that make
        ``target_frames`` frames, the rest zeros."""
        length = N_FFT + HOP * (target_frames - 1)
        waves = torch.zeros(len(clips), length, device=self.window.device)
        for i, clip in enumerate(clips):
            n = min(clip.shape[0], length)
            middle = clip[(clip.shape[0] - n) // 2:][:n]
            rms = middle.square().mean().sqrt()
            start = (length - n) // 2
            waves[i, start:start + n] = middle * (RMS_LEVEL / rms) if rms > 0 else middle
        spec = torch.stft(waves * PCM_SCALE, N_FFT, HOP, window=self.window, center=False, return_complex=True)
        power = spec.real.square() + spec.imag.square()                      # [M, 257, T]
        db = 10 * torch.log10((power.transpose(1, 2) @ self.mel).clamp(min=1e-10))   # [M, T, 32]
        db = torch.maximum(db, db.amax(dim=(1, 2), keepdim=True) - TOP_DB)
        return (db / 10 + 2).transpose(1, 2).unsqueeze(1)
