"""Entry points: ``create`` a model from a named or given config, ``load`` one from a checkpoint directory."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from .config import ModelConfig
from .devices import resolve_device
from .errors import ConfigError
from .model import OmniEmbedModel
from .registry import get_model_config, list_models


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


def load(directory: str | os.PathLike, device: str | None = None) -> OmniEmbedModel:
    """Load a checkpoint directory written by ``model.save`` (safetensors only; nothing is unpickled)."""
    return OmniEmbedModel.load(directory, device=resolve_device(device))


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


__all__ = ["create", "load", "list_models", "resolve_config"]
