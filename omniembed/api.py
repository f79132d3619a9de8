"""Entry points: ``create`` a randomly initialised model from a named or given config, ``load`` a trained one from a
checkpoint directory or a pretrained source (``imagebind_huge``, ``open_clip:ARCH/TAG``, ``hf:ORG/REPO[@rev]``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from .devices import resolve_device
from .errors import ConfigError
from .model import OmniEmbedModel
from .model_config import ModelConfig
from .models import get_model_config, list_models

if TYPE_CHECKING:
    from .pretrained.open_clip import AddSpec


def create(config_or_name: str | ModelConfig | dict | os.PathLike, seed: int | None = None,
           device: str | None = None) -> OmniEmbedModel:
    """Build a randomly initialised model.

    ``config_or_name``: a registered name (see :func:`list_models`), a :class:`ModelConfig`, its dict form,
    or the path of a JSON config file. ``seed`` makes the initialisation reproducible.
    """
    config = resolve_config(config_or_name)
    device = resolve_device(device)
    if seed is not None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = OmniEmbedModel(config)
    else:
        model = OmniEmbedModel(config)
    return model.to(device) if device is not None else model


def load(name_or_path: str | os.PathLike, device: str | None = None, add: "AddSpec | None" = None,
         progress: bool | None = None) -> OmniEmbedModel:
    """A trained model: a checkpoint directory written by ``model.save``, or a pretrained source —

    - ``"imagebind_huge"`` (see ``omniembed models``): downloaded once into ``$OMNIEMBED_CACHE`` (default
      ``~/.cache/omniembed``), verified, converted once; later calls read the converted safetensors only;
    - ``"open_clip:ARCH/TAG"``: open_clip's pretrained weights as frozen image and text towers; ``add=["audio",
      "pointcloud"]`` (or ``{modality: config}``) attaches new randomly initialised towers to train against them;
    - ``"hf:ORG/REPO[@rev]"``: a Hugging Face Hub repository holding a saved model (offline from the Hub cache).

    Weights are read from safetensors or with ``torch.load(weights_only=True)``; nothing is unpickled.
    ``progress``: download progress bars (None: on a terminal only).
    """
    from .pretrained import is_pretrained, load_pretrained
    from .pretrained.errors import UnknownSourceError

    device = resolve_device(device)
    text = os.fspath(name_or_path)
    if Path(text).expanduser().is_dir():
        if add:
            raise ConfigError(f"{text}: add= attaches new towers to open_clip: anchors only; for a checkpoint "
                              f"directory, train from it with a recipe (model.init)")
        return OmniEmbedModel.load(Path(text).expanduser(), device=device)
    if is_pretrained(text):
        return load_pretrained(text, device=device, add=add, progress=progress)
    if text in list_models():
        raise ConfigError(f"'{text}' is a randomly initialised config, not trained weights: "
                          f"omniembed.create('{text}')")
    if os.sep in text or Path(text).exists():
        return OmniEmbedModel.load(text, device=device)  # names the missing config.json
    raise UnknownSourceError(_unknown(text, with_configs=False))


def open_model(spec: str | os.PathLike, device: str | None = None) -> OmniEmbedModel:
    """What a command line ``--model`` names: a registered config or a config ``.json`` file (random init, seed 0,
    as ``omniembed create``), else anything :func:`load` reads."""
    from .pretrained.errors import UnknownSourceError

    if isinstance(spec, (str, os.PathLike)) and (os.fspath(spec) in list_models() or Path(spec).is_file()):
        return create(spec, seed=0, device=device)  # a file is a config .json (resolve_config names anything else)
    try:
        return load(spec, device=device)
    except UnknownSourceError:
        raise UnknownSourceError(_unknown(os.fspath(spec), with_configs=True)) from None


def _unknown(text: str, with_configs: bool) -> str:
    from .pretrained import list_sources

    configs = f"; or a registered config for random init: {', '.join(list_models())}" if with_configs else ""
    return (f"unknown model '{text}': not a checkpoint directory nor a pretrained model (named: "
            f"{', '.join(s.name for s in list_sources())}; open_clip:ARCH/TAG; hf:ORG/REPO[@rev]){configs}")


def resolve_config(config_or_name: str | ModelConfig | dict | os.PathLike) -> ModelConfig:
    if isinstance(config_or_name, ModelConfig):
        config_or_name.validate()
        return config_or_name
    if isinstance(config_or_name, dict):
        return ModelConfig.from_dict(config_or_name)
    text = os.fspath(config_or_name)
    if text.endswith(".json") or Path(text).is_file():
        return ModelConfig.from_file(text)
    if isinstance(config_or_name, str):
        return get_model_config(text)
    raise ConfigError(f"cannot build a model from {config_or_name!r}")


__all__ = ["create", "load", "open_model", "list_models", "resolve_config"]
