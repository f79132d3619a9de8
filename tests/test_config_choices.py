"""String settings are ``Literal`` types: one generic check, by the config loader (JSON, YAML, ``key=value``) and for
configs built in Python, whose error names the key path, the value and every allowed value."""

from __future__ import annotations

import dataclasses
import typing

import pytest

from omniembed.config import HeadConfig, check_choices, choices_of, replace_path
from omniembed.model_config import ModelConfig
from omniembed.errors import ConfigError
from omniembed.modalities.depth import DepthConfig, DepthModality
from omniembed.modalities.image import ImageConfig, ImageModality
from omniembed.pretrain.config import ExperimentConfig, load_config
from omniembed.registry import get_modality, list_modalities

DATASETS = {"datasets": [{"name": "d", "shards": ["x.tar"], "pairs": [["image", "text"]]}], "batch_size": 8,
            "streams": 1}


def test_a_model_config_value_outside_its_choices_names_the_key_path_and_the_choices():
    data = {"anchor": "image", "modalities": {"image": {"interpolation": "lanczos"}}}
    with pytest.raises(ConfigError) as err:
        ModelConfig.from_dict(data)
    assert str(err.value) == ("modalities.image.interpolation 'lanczos' is not one of "
                              "['bicubic', 'bilinear', 'nearest']")
    data = {"anchor": "image", "modalities": {"image": {"head": {"pool": "max"}}}}
    with pytest.raises(ConfigError, match=r"modalities\.image\.head\.pool 'max' is not one of \['cls', 'eos', "):
        ModelConfig.from_dict(data)


def test_experiment_choices_are_checked_when_read_and_when_overridden(tmp_path):
    with pytest.raises(ConfigError, match=r"^loss\.kind 'triplet' is not one of \['clip', 'siglip'\]$"):
        ExperimentConfig.from_dict({"data": DATASETS, "loss": {"kind": "triplet"}})
    with pytest.raises(ConfigError, match=r"train\.wandb\.mode 'sync' is not one of \['online', 'offline', "
                                          r"'disabled'\]"):
        ExperimentConfig.from_dict({"data": DATASETS, "train": {"wandb": {"mode": "sync"}}})
    assert ExperimentConfig.from_dict({"data": DATASETS, "train": {"wandb": {"mode": None}}}).train.wandb.mode is None
    with pytest.raises(ConfigError, match=r"<overrides>: train\.parallel 'zero' is not one of \['ddp', 'fsdp'\]"):
        load_config(None, ["data=" + str(DATASETS), "train.parallel=zero"])


def test_a_config_built_in_python_is_checked_when_its_modality_or_experiment_is_made():
    with pytest.raises(ConfigError, match=r"^depth\.stored 'inverse' is not one of \['depth', 'disparity'\]$"):
        DepthModality(DepthConfig(stored="inverse"))
    with pytest.raises(ConfigError, match=r"^image\.head\.pool 'max' is not one of"):
        ImageModality(ImageConfig(head=HeadConfig(pool="max")))
    config = ExperimentConfig.from_dict({"data": DATASETS})
    config.train.precision = "fp8"
    with pytest.raises(ConfigError, match=r"^train\.precision 'fp8' is not one of \['auto', 'bf16', 'fp32'\]$"):
        config.validate()
    with pytest.raises(ConfigError, match=r"^interpolation 'area' is not one of"):
        replace_path(ImageConfig(), "interpolation", "area")


def test_every_registered_modality_default_is_one_of_its_choices():
    checked = 0
    for name in list_modalities():
        config = get_modality(name).config_cls()
        check_choices(config, name)
        hints = typing.get_type_hints(type(config))
        checked += sum(choices_of(hints[f.name]) is not None for f in dataclasses.fields(config))
    assert checked >= 15  # interpolation ×4, pool ×8, audio ×5, stored, scaling, crop, fusion, decoder, …
