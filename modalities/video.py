"""Video modality: frames through the image encoder, the audio track through the audio encoder, fused.

* **frames** — ``n_clips`` clips of ``clip_seconds`` (5 × 2 s, ImageBind), clip k starting at
  k·(duration − clip)/(K − 1); ``frames_per_clip`` frames (2) spread over each clip by timestamp, decoded with
  decord where it is installed, else PyAV (``decoder``; see :mod:`.video_io`).
  Frames are resized and normalised by the image modality's own transform (centre crop, or ImageBind's three
  spatial crops with ``spatial_crops=3``) and grouped into clips of the image stem's temporal kernel ``t``:
  with ``t = 2`` (a Conv3d stem) each 2-frame clip is one input of the image encoder, exactly as a still image
  is a 2-frame clip by repetition — image and video share one stem, trunk and head. With ``t = 1`` each frame
  is embedded as an image. The frame embedding is the renormalised mean over all views.
  Frames are chosen by presentation timestamp, so variable-frame-rate files are sampled at the right moments.
* **audio** — the first audio track, read with PyAV (decord 0.6's ``AudioReader`` returns a wrong second
  channel for planar stereo AAC and corrupts memory when resampling stereo) and prepared by the audio modality
  (its clips, its filterbank), embedded by the audio encoder.
* **fusion** — ``"sum"`` (default): ``normalise(frames_weight · f̂ + audio_weight · â)`` of the unit frame and
  audio embeddings (the embedding arithmetic ImageBind shows); ``"frames"``: the audio track is ignored (not even
  decoded). A video without an audio track embeds from its frames alone, with a warning the first time.

The video encoder owns no weights: :meth:`VideoModality.link` hands it the image and audio encoders, which stay
registered (and saved) under their own names. ``VideoEncoder.parts`` gives the fused, frames-only and audio-only
embeddings of a batch. The inherited ``trunk``/``head``/``logit_scale`` config fields are unused.

Bad input, each an :class:`~omniembed.errors.InputError` naming the file: no video stream or zero frames
(:class:`EmptyInputError`), a corrupt container or unsupported codec (:class:`UnreadableInputError`). A video
shorter than one clip gives K clips over the whole video (frames repeat when it has fewer than K × F frames).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.transforms import v2

from omniembed.config import ModalityConfig
from omniembed.encoder import Encoder
from omniembed.errors import ConfigError, EmptyInputError, InputError
from omniembed.registry import Modality, register_modality

from .audio import AudioClips, AudioModality
from .audio_io import NoAudioTrackError, PyAVSource
from .image import INTERPOLATIONS, ImageConfig, ImageModality
from .video_file import VideoFile
from .video_io import clip_frame_indices, open_video, resolve_decoder

VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg")


@dataclass
class VideoConfig(ModalityConfig):
    """Clip sampling (seconds), frame views and fusion of the video modality. Its encoder is shared (see module)."""

    n_clips: int = 5
    clip_seconds: float = 2.0
    frames_per_clip: int = 2
    spatial_crops: int = 1
    """1: the image modality's centre crop; 3: left/centre/right (top/centre/bottom) crops as ImageBind."""
    frames_from: str = "image"
    """The modality whose preprocessing and encoder embed the frames."""
    audio_from: str = "audio"
    """The modality whose preprocessing and encoder embed the audio track (unused with fusion "frames")."""
    fusion: Literal["sum", "frames"] = "sum"
    frames_weight: float = 1.0
    audio_weight: float = 1.0
    decoder: Literal["auto", "decord", "pyav"] = "auto"
    """Frame decoder: "decord", "pyav", or "auto" (decord when it is installed, else PyAV); see :mod:`.video_io`."""


@dataclass
class VideoSample:
    """One video, preprocessed: ``frames`` float ``[V, 3, t, S, S]`` (V views: clips × frame groups × crops),
    ``audio`` its audio track's clips or None, ``source`` its name."""

    frames: torch.Tensor
    audio: AudioClips | None
    source: str


class VideoEncoder(Encoder):
    """Frames → the shared image encoder, audio track → the shared audio encoder, then fusion.

    Batch: ``{"frames": [B, V, 3, t, S, S], "audio": [A, K, 1, n_mels, T], "has_audio": bool [B]}`` where the
    A audio rows belong to the inputs with ``has_audio``. The shared encoders are held by reference, not as
    submodules, so this module has no parameters or state of its own: nothing for LoRA to adapt, no logit scale of
    its own to train, no layer to checkpoint (the contract's defaults).
    """

    views_per_pass = 64
    part_names = ("video", "frames", "audio")

    def __init__(self, fusion: str, frames_weight: float, audio_weight: float):
        super().__init__()
        self.fusion = fusion
        self.frames_weight, self.audio_weight = frames_weight, audio_weight
        self._shared: dict[str, Encoder | None] = {"frames": None, "audio": None}

    def attach(self, frames: Encoder, audio: Encoder | None) -> None:
        """Share the image encoder (required) and the audio encoder (None with fusion "frames")."""
        self._shared = {"frames": frames, "audio": audio}

    @property
    def frames_encoder(self) -> Encoder:
        if self._shared["frames"] is None:
            raise ConfigError("the video encoder is not linked to an image encoder (build it through "
                              "OmniEmbedModel, or call VideoModality.link)")
        return self._shared["frames"]

    def embed_frames(self, frames: torch.Tensor) -> torch.Tensor:
        """``[B, V, 3, t, S, S]`` → unit ``[B, E]``: every view through the image encoder (``views_per_pass`` at
        a time, bounding activation memory: ImageBind's 15 views × 32 videos would be 480 images at once), then
        the renormalised mean of the views' unit vectors."""
        b, v = frames.shape[:2]
        views = frames.flatten(0, 1)
        if views.shape[2] == 1:  # a 2-D image stem: each frame is an image
            views = views[:, :, 0]
        encoder = self.frames_encoder
        feats = torch.cat([encoder.features(views[i: i + self.views_per_pass])  # image inputs: [n, 1, E]
                           for i in range(0, views.shape[0], self.views_per_pass)]).reshape(b, v, -1)
        return F.normalize(encoder.postprocess(feats).mean(dim=1), dim=-1)

    def parts(self, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``{"video": fused, "frames": frames only, "audio": audio only}``, each unit rows ``[B, E]``; the audio
        row of an input without an audio track is NaN."""
        frames = self.embed_frames(batch["frames"])
        audio = torch.full_like(frames, float("nan"))
        has_audio = batch.get("has_audio")
        fused = frames
        if self.fusion == "sum" and has_audio is not None and bool(has_audio.any()):
            audio_rows = self._shared["audio"](batch["audio"]).to(frames.dtype)
            audio[has_audio] = audio_rows
            mixed = F.normalize(self.frames_weight * frames[has_audio] + self.audio_weight * audio_rows, dim=-1)
            fused = frames.clone()
            fused[has_audio] = mixed
        return {"video": fused, "frames": frames, "audio": audio}

    def features(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """``[B, 1, E]``: the fused embedding (video fusion works on unit vectors; there is no raw projection)."""
        return self.parts(batch)["video"].unsqueeze(1)

    def clip_embeddings(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """``[B, 1, E]``: :meth:`features`, already unit rows."""
        return self.features(batch)

    def forward(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Unit embeddings ``[B, E]``."""
        return self.parts(batch)["video"]

    @property
    def logit_scale(self) -> torch.Tensor:
        """The image encoder's: a video is scored against text like an image (:meth:`scale_parameters` is empty:
        that encoder's pairs train it)."""
        return self.frames_encoder.logit_scale


@register_modality
class VideoModality(Modality):
    """Video files decoded with decord or PyAV (frames) and PyAV (audio track), or ``(frames [T, H, W, 3] uint8,
    fps)``."""

    name = "video"
    config_cls = VideoConfig
    suffixes = VIDEO_SUFFIXES
    config: VideoConfig

    def __init__(self, config: VideoConfig):
        super().__init__(config)
        for key in ("n_clips", "clip_seconds", "frames_per_clip"):
            if getattr(config, key) <= 0:
                raise ConfigError(f"video.{key} must be positive, got {getattr(config, key)}")
        if config.spatial_crops not in (1, 3):
            raise ConfigError(f"video.spatial_crops must be 1 or 3, got {config.spatial_crops}")
        resolve_decoder(config.decoder)
        self.frames_proc: ImageModality | None = None
        self.audio_proc: AudioModality | None = None
        self.temporal_kernel = 1
        self._transform: Any = None
        self._warned_no_audio = False

    @property
    def uses_audio(self) -> bool:
        return self.config.fusion != "frames"

    # ---- wiring to the shared modalities -------------------------------------------------------------------------
    def link(self, processors: Mapping[str, Modality], encoders: Mapping[str, Encoder]) -> None:
        """Take the image (and audio) modality's preprocessing and encoder. Called once by the model after every
        processor and encoder exists."""
        cfg = self.config
        if cfg.frames_from not in processors or not isinstance(processors[cfg.frames_from].config, ImageConfig):
            raise ConfigError(f"video embeds its frames with the '{cfg.frames_from}' image modality, which the model "
                              f"lacks (it has: {', '.join(sorted(processors))})")
        if self.uses_audio and (cfg.audio_from not in processors
                                or not isinstance(processors[cfg.audio_from], AudioModality)):
            raise ConfigError(f"video.fusion '{cfg.fusion}' embeds the audio track with the '{cfg.audio_from}' "
                              f"modality, which the model lacks; add it or set video.fusion to 'frames'")
        image_cfg: ImageConfig = processors[cfg.frames_from].config
        t = 1 if image_cfg.tower is not None else image_cfg.temporal_kernel
        if cfg.frames_per_clip % t:
            raise ConfigError(f"video.frames_per_clip {cfg.frames_per_clip} is not a multiple of the image stem's "
                              f"temporal kernel {t}")
        self.frames_proc = processors[cfg.frames_from]
        self.audio_proc = processors[cfg.audio_from] if self.uses_audio else None
        self.temporal_kernel = t
        self._transform = (self.frames_proc.transform if cfg.spatial_crops == 1
                           else ThreeCropTransform(image_cfg))
        encoders[self.name].attach(encoders[cfg.frames_from],
                                   encoders[cfg.audio_from] if self.uses_audio else None)

    # ---- raw input → one sample ----------------------------------------------------------------------------------
    def load(self, path: Path) -> VideoFile:
        """Open with the configured decoder and read the frame timestamps (frames are decoded in :meth:`preprocess`)."""
        return open_video(path, self.config.decoder)

    def thumbnail(self, path: Path, size: int = 96) -> np.ndarray:
        """The middle frame, short side resized to ``size`` and centre-cropped: uint8 ``[size, size, 3]``."""
        clip = open_video(path, self.config.decoder)
        frame = torch.from_numpy(clip.frames([clip.n_frames // 2])[0]).permute(2, 0, 1)
        frame = v2.functional.center_crop(v2.functional.resize(frame, size, antialias=True), size)
        return frame.permute(1, 2, 0).numpy()

    def preprocess(self, raw: Any) -> VideoSample:
        """A :class:`VideoFile` or ``(frames uint8 [T, H, W, 3], fps)`` → frame views and audio clips."""
        if self.frames_proc is None:
            raise ConfigError("the video modality is not linked to an image modality (build it through "
                              "OmniEmbedModel, or call VideoModality.link)")
        cfg = self.config
        if isinstance(raw, VideoFile):
            indices = clip_frame_indices(raw.timestamps, cfg.n_clips, cfg.clip_seconds, cfg.frames_per_clip)
            flat = [i for clip in indices for i in clip]
            unique = sorted(set(flat))
            decoded = raw.frames(unique)
            frames = torch.from_numpy(decoded[[unique.index(i) for i in flat]])
            source, audio = raw.name, self._audio_track(raw.path) if self.uses_audio else None
        else:
            frames, fps, source = _as_frames(raw)
            times = np.stack([np.arange(len(frames)) / fps, np.arange(1, len(frames) + 1) / fps], axis=1)
            indices = clip_frame_indices(times, cfg.n_clips, cfg.clip_seconds, cfg.frames_per_clip)
            frames = frames[[i for clip in indices for i in clip]]
            audio = None
            if self.uses_audio:
                self._warn_no_audio(source)
        return VideoSample(self._views(frames), audio, source)

    def _views(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 ``[K·F, H, W, 3]`` → ``[V, 3, t, S, S]`` (V = crops × K·F / t)."""
        pixels = self._transform(frames.permute(0, 3, 1, 2))  # [K·F, 3, S, S] or [crops, K·F, 3, S, S]
        if pixels.ndim == 4:
            pixels = pixels.unsqueeze(0)
        crops, n, c, h, w = pixels.shape
        t = self.temporal_kernel
        return pixels.reshape(crops * n // t, t, c, h, w).transpose(1, 2).contiguous()

    def _audio_track(self, path: Path) -> AudioClips | None:
        try:
            source = PyAVSource(path, str(path))
        except NoAudioTrackError:
            self._warn_no_audio(str(path))
            return None
        return self.audio_proc.clips(source)

    def _warn_no_audio(self, source: str) -> None:
        if not self._warned_no_audio:
            self._warned_no_audio = True
            warnings.warn(f"{source}: no audio track, embedding the frames alone (further videos without audio "
                          f"are not reported)", UserWarning, stacklevel=3)

    def collate(self, samples: list[VideoSample]) -> dict[str, torch.Tensor]:
        """``{"frames": [B, V, 3, t, S, S], "audio": [A, K, 1, n_mels, T], "has_audio": bool [B]}``."""
        batch = {"frames": torch.stack([s.frames for s in samples]),
                 "has_audio": torch.tensor([s.audio is not None for s in samples])}
        with_audio = [s.audio for s in samples if s.audio is not None]
        if with_audio:
            batch["audio"] = self.audio_proc.collate(with_audio)
        return batch

    # ---- encoder -------------------------------------------------------------------------------------------------
    def build_encoder(self, embed_dim: int) -> VideoEncoder:
        cfg = self.config
        return VideoEncoder(cfg.fusion, cfg.frames_weight, cfg.audio_weight)

    @classmethod
    def tiny_config(cls) -> VideoConfig:
        return VideoConfig(n_clips=2)


class ThreeCropTransform:
    """ImageBind's video views: resize the short side, then three ``image_size`` crops along the long side
    (left/centre/right, or top/centre/bottom), normalised. uint8 ``[N, 3, H, W]`` → ``[3, N, 3, S, S]``."""

    def __init__(self, cfg: ImageConfig):
        self.size = cfg.image_size
        self.resize = v2.Resize(cfg.resize_size or cfg.image_size, interpolation=INTERPOLATIONS[cfg.interpolation],
                                antialias=True)
        self.finish = v2.Compose([v2.ToDtype(torch.float32, scale=True),
                                  v2.Normalize(mean=list(cfg.mean), std=list(cfg.std))])

    def __call__(self, frames: torch.Tensor) -> torch.Tensor:
        size = self.size
        frames = self.resize(frames)
        h, w = frames.shape[-2:]
        if h < size or w < size:  # resize_size below image_size: pad up by a centre crop
            frames = v2.functional.center_crop(frames, [max(h, size), max(w, size)])
            h, w = frames.shape[-2:]
        crops = []
        for i in range(3):
            top = (h - size) * i // 2 if h > w else (h - size) // 2
            left = (w - size) * i // 2 if w >= h else (w - size) // 2
            crops.append(self.finish(frames[..., top: top + size, left: left + size]))
        return torch.stack(crops)


def _as_frames(raw: Any) -> tuple[torch.Tensor, float, str]:
    """``(frames, fps)`` with frames uint8 ``[T, H, W, 3]`` (numpy or torch) → (tensor, fps, name)."""
    if not (isinstance(raw, tuple) and len(raw) == 2 and isinstance(raw[1], (int, float)) and raw[1] > 0):
        raise InputError(f"<{type(raw).__name__}>", "not a video (expected a path or a (frames [T, H, W, 3] uint8, "
                                                    "fps) pair)")
    frames, fps = raw
    frames = torch.as_tensor(np.asarray(frames)) if not isinstance(frames, torch.Tensor) else frames
    name = f"<frames {tuple(frames.shape)}>"
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != torch.uint8:
        raise InputError(name, f"frames must be uint8 [T, H, W, 3], got {frames.dtype} {tuple(frames.shape)}")
    if frames.shape[0] == 0:
        raise EmptyInputError(name, "video has no frames")
    return frames, float(fps), name
