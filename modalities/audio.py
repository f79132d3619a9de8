"""Audio modality: any audio file → K clips at 16 kHz → 128-bin Kaldi log-mel → spectrogram ViT → one vector.

The recipe is ImageBind's (``load_and_transform_audio_data`` + its audio encoder), every number a config field:

* **clips** — ``n_clips`` clips of ``clip_seconds`` (3 × 2 s), clip k starting at k·(duration − clip)/(K − 1);
  a file shorter than one clip gives K copies of the whole file. Only the clip windows are read and resampled
  (with ``torchaudio``'s sinc kernel), so hour-long files use bounded memory.
* **features** — each clip's mean removed, one channel (see below), Kaldi fbank (htk_compat, Hann, 25/10 ms,
  no dither, no energy), transposed to ``[n_mels, frames]``, zero-padded or cut to ``target_frames`` (204),
  ``(x − mean) / std`` with mean −4.268, std 9.138 → ``[K, 1, 128, 204]`` per input.
* **encoder** — Conv2d patches (kernel 16, stride 10 → 12 × 19 = 228) → LayerNorm → CLS + positions →
  transformer with bias key/value tokens → LayerNorm, CLS, Linear → unit vector; the clips' vectors are averaged
  (:class:`~omniembed.encoder.ModalityEncoder`). Logit scale fixed at 20. Two switches replace the stem and
  transformer: ``timm`` (a 2-D CNN over the filterbank image), ``tdnn`` (1-D convolutions along time, the mel
  bins as channels: :mod:`omniembed.nn.tdnn`) and ``speech_embedding`` (Google's speech embedding, frozen, under
  a small trainable head: :mod:`omniembed.nn.speech_embedding`, the demo model's choice).

Defaults differ from ImageBind in two places, each a switch: ``channel_mix="mean"`` mixes all channels to mono
(ImageBind: ``"first"``, channel 0 only) and ``mean_removal="clip"`` subtracts each clip's own mean (ImageBind:
``"shared_buffer"``, in place on the shared waveform, so where clips overlap — files under K × clip seconds —
the overlap also loses the neighbouring clip's mean). :func:`omniembed.convert.imagebind.imagebind_audio_config` sets both, which with
``resampler="torchaudio"`` and ``fbank="kaldi"`` reproduces ImageBind's features bit for bit.

Where the work happens: :meth:`AudioModality.preprocess` reads and resamples one input's clip windows
(:class:`AudioClips`, raw waveforms); :meth:`AudioModality.collate` turns the whole batch into filterbanks at
once (``fbank="batched"``, the default) or clip by clip with torchaudio's Kaldi code (``"kaldi"``). Doing the
filterbank in ``collate`` gives ``model.embed`` and the training loader the batched path with no change to the
core; the encoder always receives features ``[B, K, 1, n_mels, target_frames]``. The batched path (polyphase
resampler + :class:`~.audio_features.BatchedFbank`) stays within 2e-3 (max) / 2e-5 (mean) of the Kaldi path in
model-input units (tests) and is about 3× faster end to end at batch 64 on 2 CPU cores
(``tools/bench_audio.py``). One input's features: :meth:`AudioModality.features`.

Bad input — empty, shorter than one 25 ms frame, NaN/Inf samples, undecodable or an unknown codec, a container
with no audio track — raises an :class:`~omniembed.errors.InputError` naming the file. Silence is valid input:
every frame is Kaldi's log floor, log(ε) ≈ −15.94 (−1.277 after normalising).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from omniembed.config import HeadConfig, LogitScaleConfig, ModalityConfig, TransformerConfig
from omniembed.encoder import ModalityEncoder
from omniembed.errors import ConfigError, EmptyInputError, InputError
from omniembed.extras import require
from omniembed.nn.heads import Postprocess, TokenHead
from omniembed.nn.speech_embedding import (N_MELS as SPEECH_MELS, SAMPLE_RATE as SPEECH_RATE, WINDOW_FRAMES,
                                          SpeechEmbeddingConfig, SpeechEmbeddingTrunk, SpeechLogMel)
from omniembed.nn.tdnn import TdnnConfig, TdnnTrunk
from omniembed.nn.timm_trunk import IdentityStem, TimmConfig, TimmTrunk
from omniembed.nn.tokens import PoolingHead, Tokens, TransformerTrunk
from omniembed.nn.transformer import Transformer
from omniembed.registry import Modality, register_modality

from .audio_features import (BatchedFbank, clip_ranges, frame_samples, kaldi_fbank, log_mel_to_model_input, n_frames,
                             normalise_per_clip, polyphase_resampler, resample, resampled_length, resampler_blocks,
                             voiced_span)
from .audio_io import ArraySource, AudioSource, open_audio

THUMBNAIL_SECONDS = 10.0
THUMBNAIL_RANGE = 12.0
"""Natural-log energy range shown by a thumbnail (≈ 52 dB below the loudest bin; quieter bins are black)."""
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".aifc", ".au", ".caf",
                  ".w64", ".m4a", ".aac", ".wma")


@dataclass
class AudioConfig(ModalityConfig):
    """Clip sampling (seconds, Hz), filterbank and encoder of the audio modality. Defaults: ImageBind's sizes."""

    sample_rate: int = 16000
    n_clips: int = 3
    clip_seconds: float = 2.0
    channel_mix: Literal["mean", "first"] = "mean"
    """"mean": mix all channels to mono; "first": channel 0 only (ImageBind)."""
    mean_removal: Literal["clip", "shared_buffer", "none"] = "clip"
    """"clip": subtract each clip's own mean; "shared_buffer": in place on the shared waveform, in clip order
    (ImageBind: overlapping clips also lose their neighbour's mean); "none"."""
    resampler: Literal["polyphase", "torchaudio"] = "polyphase"
    """"polyphase": torchaudio's sinc kernel as banded GEMMs (fast); "torchaudio": ``functional.resample``."""
    fbank: Literal["batched", "kaldi", "speech_embedding"] = "batched"
    """"batched": the whole batch at once in :meth:`AudioModality.collate`; "kaldi": torchaudio's Kaldi fbank
    clip by clip (the reference; they agree to 2e-3 in model-input units, see tests); "speech_embedding": the
    log-mel of Google's speech embedding (:mod:`omniembed.nn.speech_embedding`; 16 kHz, 32 bins, its own fixed
    scaling, so ``feature_mean``, ``feature_std`` and ``feature_norm`` do not apply), for that tower only."""
    n_mels: int = 128
    target_frames: int = 204
    feature_mean: float = -4.268
    feature_std: float = 9.138
    feature_norm: Literal["global", "clip"] = "global"
    """"global": ``(x − feature_mean) / feature_std`` (ImageBind); "clip": per-clip mean and variance
    normalisation of every mel bin (speaker- and channel-robust; for models trained on few speakers)."""
    trim_db: float | None = None
    """Cut the lead-in and tail quieter than this many dB below the loudest 25 ms frame before the clips are
    placed (:func:`~.audio_features.voiced_span`), so how much silence a recorder caught around a sound is no part
    of its embedding; None keeps the whole input (ImageBind)."""
    patch_size: int = 16
    patch_stride: int = 10
    stem_norm_eps: float = 1e-5
    tower: TimmConfig | TdnnConfig | SpeechEmbeddingConfig | None = None
    """Another trunk instead of the patch stem and transformer: ``{kind: timm, name: ...}``, a timm CNN over the
    filterbank image ``[1, n_mels, target_frames]`` (``in_chans=1``; small CNNs learn from little data much faster
    than a ViT), or ``{kind: tdnn, ...}``, a time-delay network (1-D convolutions along time, mel bins as
    channels): the cheapest tower that generalises to unseen speakers from a few of them; or
    ``{kind: speech_embedding, ...}``, Google's speech embedding, frozen, with a trainable head (with
    ``fbank: speech_embedding``, ``sample_rate: 16000``, ``n_mels: 32``): real speech learnt from synthetic voices.
    Configs written with
    ``timm:`` / ``tdnn:`` keys read as these."""
    trunk: TransformerConfig = field(default_factory=lambda: TransformerConfig(
        width=768, depth=12, heads=12, drop_path=0.1, ln_eps=1e-6, bias_kv=True))
    head: HeadConfig = field(default_factory=lambda: HeadConfig(pool="cls", norm_eps=1e-6))
    logit_scale: LogitScaleConfig = field(default_factory=lambda: LogitScaleConfig(init=20.0, learnable=False))

    @property
    def patch_stem(self) -> bool:
        """Whether the tower is the patch stem and transformer (no ``tower`` replaces them)."""
        return self.tower is None


@dataclass
class AudioClips:
    """One input's clips at the model rate, before the filterbank.

    ``waves`` float32 ``[K, N]`` (zero-padded to the longest clip), ``lengths`` int64 ``[K]`` valid samples per
    clip, ``source`` names the input.
    """

    waves: torch.Tensor
    lengths: torch.Tensor
    source: str


class SpectrogramPatchStem(nn.Module):
    """ImageBind's audio stem: Conv2d patches (no bias) → LayerNorm → CLS token → + learned positions.

    ``[B, 1, n_mels, frames]`` → Tokens ``[B, 1 + gh · gw, D]`` with ``g = (size − kernel) // stride + 1``
    (128 × 204, kernel 16, stride 10: 12 × 19 = 228 patches). The CLS token is not normalised.
    """

    def __init__(self, width: int, n_mels: int, frames: int, kernel: int, stride: int, norm_eps: float = 1e-5):
        super().__init__()
        self.proj = nn.Conv2d(1, width, kernel, stride=stride, bias=False)
        self.norm = nn.LayerNorm(width, eps=norm_eps)
        grid = ((n_mels - kernel) // stride + 1) * ((frames - kernel) // stride + 1)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, width))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + grid, width))
        nn.init.normal_(self.cls_token, std=0.02)
        nn.init.normal_(self.pos_embed, std=0.02)

    def forward(self, x: torch.Tensor) -> Tokens:
        patches = self.norm(self.proj(x).flatten(2).transpose(1, 2))  # [B, N, D]
        cls = self.cls_token.expand(patches.shape[0], -1, -1)
        return Tokens(torch.cat([cls, patches], dim=1) + self.pos_embed)


@register_modality
class AudioModality(Modality):
    """Audio files (soundfile / PyAV), waveforms ``[N]`` / ``[C, N]`` at ``sample_rate``, or ``(waveform, rate)``."""

    name = "audio"
    config_cls = AudioConfig
    suffixes = AUDIO_SUFFIXES
    config: AudioConfig

    def __init__(self, config: AudioConfig):
        super().__init__(config)
        for key in ("sample_rate", "n_clips", "clip_seconds", "n_mels", "target_frames", "feature_std", "patch_size",
                    "patch_stride"):
            if getattr(config, key) <= 0:
                raise ConfigError(f"audio.{key} must be positive, got {getattr(config, key)}")
        if config.trim_db is not None and not config.trim_db > 0:
            raise ConfigError(f"audio.trim_db must be positive (dB below the loudest frame) or null, got "
                              f"{config.trim_db}")
        if isinstance(config.tower, TdnnConfig):
            config.tower.validate("audio.tower")
            if config.tower.pool == "valid" and config.feature_norm != "clip":
                raise ConfigError("audio.tower.pool 'valid' finds padding as frames that are 0 in every mel bin, "
                                  "which they are only with audio.feature_norm 'clip', not "
                                  f"{config.feature_norm!r}")
        self._check_speech_front_end(config)
        if config.patch_stem and (config.target_frames < config.patch_size or config.n_mels < config.patch_size):
            raise ConfigError(f"audio: a {config.n_mels} × {config.target_frames} spectrogram is smaller than one "
                              f"{config.patch_size}-patch")
        self.window = frame_samples(config.sample_rate)[0]
        self._batched_fbank: BatchedFbank | None = None
        self._speech_mel: SpeechLogMel | None = None

    @staticmethod
    def _check_speech_front_end(config: AudioConfig) -> None:
        """The speech-embedding tower and its features come together, at the rate and size the network was
        trained on."""
        tower = isinstance(config.tower, SpeechEmbeddingConfig)
        if tower != (config.fbank == "speech_embedding"):
            raise ConfigError("audio: the speech_embedding tower needs fbank 'speech_embedding' and that fbank "
                              f"needs the tower (tower {type(config.tower).__name__}, fbank {config.fbank!r})")
        if not tower:
            return
        config.tower.validate("audio.tower")
        wanted = {"sample_rate": SPEECH_RATE, "n_mels": SPEECH_MELS}
        wrong = {k: getattr(config, k) for k, v in wanted.items() if getattr(config, k) != v}
        if wrong:
            raise ConfigError(f"audio: the speech_embedding tower needs {wanted}, got {wrong}")
        if config.target_frames < WINDOW_FRAMES:
            raise ConfigError(f"audio.target_frames must be >= {WINDOW_FRAMES} (one speech-embedding window) for "
                              f"the speech_embedding tower, got {config.target_frames}")

    # ---- raw input → clips ---------------------------------------------------------------------------------------
    def load(self, path: Path) -> AudioSource:
        """Open the file and read its header only (samples are read per clip in :meth:`preprocess`)."""
        return open_audio(path)

    def load_bytes(self, data: bytes, suffix: str) -> AudioSource:
        """The same from a file's bytes (webdataset shards), without a scratch file."""
        return open_audio(data, suffix)

    def prepare_bytes(self, data: bytes, suffix: str) -> AudioClips:
        """:meth:`load_bytes` then :meth:`preprocess`: the decoder reads the bytes, no scratch file is written."""
        return self.preprocess(self.load_bytes(data, suffix))

    def preprocess(self, raw: Any) -> AudioClips:
        """An :class:`AudioSource`, a waveform ``[N]``/``[C, N]`` (numpy/torch, at ``sample_rate``) or a
        ``(waveform, sample_rate)`` pair → the input's clips at the model rate."""
        return self.clips(_as_source(raw, self.config.sample_rate))

    def clips(self, source: AudioSource) -> AudioClips:
        """Read, resample and mean-centre the clip windows of ``source``; mix or pick the channel."""
        cfg = self.config
        n_out = resampled_length(source.frames, source.sample_rate, cfg.sample_rate)
        if source.frames <= 0 or n_out <= 0:
            raise EmptyInputError(source.name, "audio has no samples")
        if n_out < self.window:
            raise InputError(source.name, f"audio is {n_out / cfg.sample_rate * 1000:.1f} ms long, shorter than "
                                          f"one {self.window / cfg.sample_rate * 1000:.0f} ms filterbank frame")
        start, stop, whole = self._kept_span(source, n_out)
        ranges = [(start + a, start + b) for a, b in clip_ranges(stop - start, cfg.sample_rate, cfg.n_clips,
                                                                  cfg.clip_seconds)]
        lengths = [b - a for a, b in ranges]
        waves = torch.empty(len(ranges), max(lengths))
        for span_start, span_stop, members in _spans(ranges):
            buffer = (self._read_resampled(source, span_start, span_stop) if whole is None  # [C, span]
                      else whole[:, span_start:span_stop])
            if not torch.isfinite(buffer.sum()) and not torch.isfinite(buffer).all():  # sum: the fast check
                raise InputError(source.name, "audio contains NaN or Inf samples")
            for k in members:
                view = buffer[:, ranges[k][0] - span_start: ranges[k][1] - span_start]
                if cfg.mean_removal == "shared_buffer":
                    view -= view.mean()  # in place: later overlapping clips see it (ImageBind)
                clip = waves[k, : view.shape[1]]
                mono = view[0] if cfg.channel_mix == "first" or view.shape[0] == 1 else view.mean(dim=0)
                if cfg.mean_removal == "clip":
                    torch.sub(mono, mono.mean(), out=clip)
                else:
                    clip.copy_(mono)
                if view.shape[1] < waves.shape[1]:
                    waves[k, view.shape[1]:] = 0.0
        return AudioClips(waves, torch.tensor(lengths, dtype=torch.int64), source.name)

    def _kept_span(self, source: AudioSource, n_out: int) -> tuple[int, int, torch.Tensor | None]:
        """Model-rate samples ``[start, stop)`` the clips are placed in: all of them, or with ``trim_db`` the span
        from the first to the last loud frame of the mono mix — then with the whole resampled input ``[C, n_out]``
        it was found in, which the clips are cut from instead of reading it again."""
        if self.config.trim_db is None:
            return 0, n_out, None
        whole = self._read_resampled(source, 0, n_out)  # NaN or Inf: kept in the span, refused by clips()
        mono = whole[0] if self.config.channel_mix == "first" or whole.shape[0] == 1 else whole.mean(dim=0)
        return *voiced_span(mono, self.config.sample_rate, self.config.trim_db), whole

    def _read_resampled(self, source: AudioSource, start: int, stop: int) -> torch.Tensor:
        """Model-rate samples ``[start, stop)`` of ``source`` as ``[C, stop - start]``, equal to slicing the whole
        resampled file: the window reaches back whole resampler blocks so its edge effects fall outside."""
        rate = self.config.sample_rate
        if source.sample_rate == rate:
            return torch.from_numpy(source.read(start, stop))
        orig, new, margin = resampler_blocks(source.sample_rate, rate)
        first_block = max(0, start // new - margin)
        a, b = first_block * orig, min((-(-stop // new) + margin) * orig, source.frames)
        resampler = polyphase_resampler(source.sample_rate, rate) if self.config.resampler == "polyphase" else None
        if resampler is None:
            out = resample(torch.from_numpy(source.read(a, b)), source.sample_rate, rate, "torchaudio")
        else:  # read straight into the zero-padded buffer the resampler needs
            left, right = resampler.padding(b - a)
            padded = np.empty((source.channels, left + (b - a) + right), np.float32)
            padded[:, :left] = 0.0
            padded[:, left + (b - a):] = 0.0
            source.read_into(a, b, padded[:, left: left + (b - a)])
            out = resampler.resample_padded(torch.from_numpy(padded), b - a)
        offset = first_block * new
        return out[:, start - offset: stop - offset]

    # ---- clips → filterbanks -------------------------------------------------------------------------------------
    def collate(self, samples: list[AudioClips]) -> torch.Tensor:
        """A batch of clips → model input ``[B, K, 1, n_mels, target_frames]``."""
        clips = [s.waves[k, : int(n)] for s in samples for k, n in enumerate(s.lengths)]
        return self.filterbank(clips).unflatten(0, (len(samples), self.config.n_clips))

    def filterbank(self, clips: list[torch.Tensor], fbank: str | None = None) -> torch.Tensor:
        """M clip waveforms ``[n_i]`` at the model rate → normalised features ``[M, 1, n_mels, target_frames]``,
        on the clips' device. ``fbank`` overrides the config's choice ("batched" / "kaldi"); the speech-embedding
        features have no alternative and ignore it."""
        if self.config.fbank == "speech_embedding":
            if self._speech_mel is None:
                self._speech_mel = SpeechLogMel()
            return self._speech_mel.to(clips[0].device)(clips, self.config.target_frames)
        features = self._log_mel_input(clips, fbank)
        if self.config.feature_norm == "clip":
            frames = [min(int(n_frames(c.shape[0], self.config.sample_rate)), self.config.target_frames)
                      for c in clips]
            features = normalise_per_clip(features, frames)
        return features

    def _log_mel_input(self, clips: list[torch.Tensor], fbank: str | None) -> torch.Tensor:
        cfg = self.config
        if (fbank or cfg.fbank) == "kaldi":
            rows = [kaldi_fbank(c, cfg.sample_rate, cfg.n_mels) for c in clips]
            log_mel = torch.zeros(len(rows), max(r.shape[0] for r in rows), cfg.n_mels, device=clips[0].device)
            for i, r in enumerate(rows):
                log_mel[i, : r.shape[0]] = r
            frames = torch.tensor([r.shape[0] for r in rows])
            return log_mel_to_model_input(log_mel, frames, cfg.target_frames, cfg.feature_mean, cfg.feature_std)
        if self._batched_fbank is None:
            self._batched_fbank = BatchedFbank(cfg.sample_rate, cfg.n_mels)
        return self._batched_fbank.to(clips[0].device)(clips, cfg.target_frames, cfg.feature_mean, cfg.feature_std)

    def features(self, item: Any) -> torch.Tensor:
        """One input (path, waveform, ``(waveform, rate)``) → its model input ``[K, 1, n_mels, target_frames]``."""
        return self.collate([self.prepare(item)])[0]

    def thumbnail(self, path: Path, size: int = 96) -> np.ndarray:
        """A log-mel spectrogram of the first ``THUMBNAIL_SECONDS`` (time to the right, low frequencies at the
        bottom, the top ``THUMBNAIL_RANGE`` of log energy in magma colours): uint8 ``[size, size, 3]``."""
        colormaps = require("matplotlib", "audio thumbnails (result grids)").colormaps
        rate = self.config.sample_rate
        source = open_audio(path)
        stop = min(resampled_length(source.frames, source.sample_rate, rate), int(THUMBNAIL_SECONDS * rate))
        if stop < self.window:
            raise InputError(str(path), "audio is shorter than one filterbank frame")
        log_mel = kaldi_fbank(self._read_resampled(source, 0, stop).mean(dim=0), rate, self.config.n_mels)
        picture = log_mel.T.flip(0)  # [n_mels, frames], low frequencies last (bottom row)
        top = picture.max()
        scaled = ((picture - (top - THUMBNAIL_RANGE)) / THUMBNAIL_RANGE).clamp(0.0, 1.0)
        scaled = torch.nn.functional.interpolate(scaled[None, None], size=(size, size), mode="bilinear",
                                                 align_corners=False)[0, 0]
        return (colormaps["magma"](scaled.numpy())[..., :3] * 255).round().astype(np.uint8)

    # ---- encoder -------------------------------------------------------------------------------------------------
    def build_encoder(self, embed_dim: int) -> ModalityEncoder:
        cfg = self.config
        if not cfg.patch_stem:
            trunk = TOWERS[type(cfg.tower)](cfg)
            head = TokenHead(HeadConfig(pool="cls", norm=False, bias=cfg.head.bias), trunk.width, embed_dim)
            return ModalityEncoder(IdentityStem(), trunk, PoolingHead(head), Postprocess(cfg.logit_scale),
                                   clip_ndim=3)
        stem = SpectrogramPatchStem(cfg.trunk.width, cfg.n_mels, cfg.target_frames, cfg.patch_size,
                                    cfg.patch_stride, cfg.stem_norm_eps)
        return ModalityEncoder(stem, TransformerTrunk(Transformer(cfg.trunk)),
                               PoolingHead(TokenHead(cfg.head, cfg.trunk.width, embed_dim)),
                               Postprocess(cfg.logit_scale), clip_ndim=3)

    def export_assets(self, directory: Path) -> AudioConfig:
        """A speech-embedding tower's frozen weights are buffers in the weight file: the saved config says so, and
        loading the model needs neither openwakeword nor the ONNX file."""
        cfg = self.config
        if isinstance(cfg.tower, SpeechEmbeddingConfig):
            return dataclasses.replace(cfg, tower=dataclasses.replace(cfg.tower, weights_in_checkpoint=True))
        return cfg

    @classmethod
    def tiny_config(cls) -> AudioConfig:
        return AudioConfig(trunk=TransformerConfig(width=64, depth=2, heads=4, ln_eps=1e-6, bias_kv=True))


TOWERS: dict[type, Any] = {
    TimmConfig: lambda cfg: TimmTrunk(cfg.tower, in_chans=1),
    TdnnConfig: lambda cfg: TdnnTrunk(cfg.tower, cfg.n_mels),
    SpeechEmbeddingConfig: lambda cfg: SpeechEmbeddingTrunk(cfg.tower),
}
"""``AudioConfig.tower``'s config type → its trunk (``AudioConfig`` → module) in place of the patch stem and ViT."""


def _spans(ranges: list[tuple[int, int]]) -> list[tuple[int, int, list[int]]]:
    """Group clip ranges that overlap or touch into spans read once: ``(start, stop, clip indices in order)``."""
    order = sorted(range(len(ranges)), key=lambda k: ranges[k])
    spans: list[tuple[int, int, list[int]]] = []
    for k in order:
        a, b = ranges[k]
        if spans and a <= spans[-1][1]:
            s, e, members = spans[-1]
            spans[-1] = (s, max(e, b), members + [k])
        else:
            spans.append((a, b, [k]))
    return [(s, e, sorted(m)) for s, e, m in spans]


def _as_source(raw: Any, sample_rate: int) -> AudioSource:
    if isinstance(raw, AudioSource):
        return raw
    rate = sample_rate
    if isinstance(raw, tuple) and len(raw) == 2 and isinstance(raw[1], (int, np.integer)):
        raw, rate = raw
    if isinstance(raw, torch.Tensor):
        raw = raw.detach().cpu().numpy()
    if not isinstance(raw, np.ndarray):
        raise InputError(f"<{type(raw).__name__}>", "not audio (expected a path, a waveform array or tensor, or a "
                                                    "(waveform, sample_rate) pair)")
    name = f"<{type(raw).__name__} {tuple(raw.shape)}>"
    if raw.ndim == 2 and raw.shape[1] < raw.shape[0]:
        raw = raw.T  # [N, C] (soundfile's layout) → [C, N]: the channel axis is the short one
    if raw.size == 0:
        raise EmptyInputError(name, "waveform has no samples")
    return ArraySource(raw, rate, name)
