"""Typed configs: strict JSON round trip, errors that name the bad key."""

import dataclasses

import pytest

from omniembed.config import TransformerConfig, from_dict, replace_path
from omniembed.errors import ConfigError
from omniembed.model_config import ModelConfig
from omniembed.models import get_model_config


def test_model_config_json_round_trip_is_exact():
    config = get_model_config("omni-tiny")
    again = ModelConfig.from_json(config.to_json())
    assert again == config
    assert again.to_json() == config.to_json()


def test_unknown_key_error_names_the_dotted_path():
    data = get_model_config("omni-tiny").to_dict()
    data["modalities"]["image"]["trunk"]["dept"] = 3
    with pytest.raises(ConfigError, match=r"modalities\.image\.trunk.*dept"):
        ModelConfig.from_dict(data)


def test_wrong_type_error_names_key_and_value():
    with pytest.raises(ConfigError, match=r"depth: expected an integer, got '2'"):
        from_dict(TransformerConfig, {"depth": "2"})


def test_unknown_modality_lists_registered_ones():
    data = get_model_config("omni-tiny").to_dict()
    data["modalities"]["smell"] = {}
    with pytest.raises(ConfigError, match=r"unknown modality 'smell' \(registered: .*image"):
        ModelConfig.from_dict(data)


def test_anchor_must_be_one_of_the_modalities():
    data = get_model_config("omni-tiny").to_dict()
    data["anchor"] = "sonar"
    with pytest.raises(ConfigError, match="anchor 'sonar'"):
        ModelConfig.from_dict(data)


def test_bad_json_error_names_the_source():
    with pytest.raises(ConfigError, match=r"my\.json: not valid JSON"):
        ModelConfig.from_json("{", source="my.json")


def test_replace_path_sets_nested_field_with_type_check():
    trunk = TransformerConfig()
    assert replace_path(trunk, "depth", 5).depth == 5
    assert replace_path(trunk, "drop_path", 1).drop_path == 1.0
    with pytest.raises(ConfigError, match="unknown config key 'nope'"):
        replace_path(trunk, "nope", 1)
    with pytest.raises(ConfigError, match="expected true/false"):
        replace_path(trunk, "causal", "yes")


def test_tuples_survive_the_round_trip():
    config = get_model_config("omni-tiny")
    image = ModelConfig.from_json(config.to_json()).modalities["image"]
    assert isinstance(image.mean, tuple) and len(image.mean) == 3
    assert dataclasses.asdict(image) == dataclasses.asdict(config.modalities["image"])
