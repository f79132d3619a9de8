"""Checkpoints: safetensors + config.json, bit-identical round trip, never unpickled, strict weight matching."""

import json
import pickle

import numpy as np
import pytest
import torch

import omniembed
from omniembed.errors import CheckpointError, ConfigError
from omniembed.io import save_tensors

TEXTS = ["a dog barking in the rain", "seven"]


def test_save_then_load_gives_bit_identical_embeddings(tiny_model, image_files, tmp_path):
    inputs = [image_files["jpg"], *TEXTS]
    tiny_model.save(tmp_path / "ckpt")
    loaded = omniembed.load(tmp_path / "ckpt")
    assert np.array_equal(loaded.embed(inputs), tiny_model.embed(inputs))
    assert loaded.fingerprint() == tiny_model.fingerprint()


def test_checkpoint_holds_only_json_safetensors_and_its_model_card(tiny_model, tmp_path):
    tiny_model.save(tmp_path / "ckpt")
    names = sorted(p.name for p in (tmp_path / "ckpt").iterdir())
    assert names == ["README.md", "config.json", "model.safetensors"]
    config = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    assert config["format"] == "omniembed/1" and config["anchor"] == "image"


def test_loading_never_unpickles(tiny_model, tmp_path, monkeypatch):
    tiny_model.save(tmp_path / "ckpt")

    def forbidden(*args, **kwargs):
        raise AssertionError("unpickling during load")

    monkeypatch.setattr(pickle, "load", forbidden)
    monkeypatch.setattr(pickle, "loads", forbidden)
    monkeypatch.setattr(torch, "load", forbidden)
    omniembed.load(tmp_path / "ckpt")


def test_config_that_does_not_match_the_weights_names_the_keys(tiny_model, tmp_path):
    tiny_model.save(tmp_path / "ckpt")
    config_path = tmp_path / "ckpt" / "config.json"
    config = json.loads(config_path.read_text())
    config["modalities"]["image"]["trunk"]["depth"] = 3
    config["modalities"]["text"]["trunk"]["width"] = 32
    config_path.write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=r"model\.safetensors: weights do not match the config") as info:
        omniembed.load(tmp_path / "ckpt")
    message = str(info.value)
    assert "missing: encoders.image.trunk.transformer.blocks.2" in message
    assert "shape mismatch: encoders.text" in message


def test_corrupt_weights_file_raises_checkpoint_error(tiny_model, tmp_path):
    tiny_model.save(tmp_path / "ckpt")
    weights = tmp_path / "ckpt" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="cannot read safetensors"):
        omniembed.load(tmp_path / "ckpt")


def test_directory_without_config_is_not_a_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="config.json missing"):
        omniembed.load(tmp_path)


def test_wrong_config_key_in_checkpoint_raises_config_error(tiny_model, tmp_path):
    tiny_model.save(tmp_path / "ckpt")
    config_path = tmp_path / "ckpt" / "config.json"
    config = json.loads(config_path.read_text())
    config["modalities"]["image"]["imagesize"] = 3
    config_path.write_text(json.dumps(config))
    with pytest.raises(ConfigError, match="imagesize"):
        omniembed.load(tmp_path / "ckpt")


def test_failed_save_leaves_the_previous_checkpoint_intact(tiny_model, tmp_path, monkeypatch):
    target = tmp_path / "ckpt"
    tiny_model.save(target)
    before = (target / "model.safetensors").read_bytes()

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("omniembed.model.save_tensors", boom)
    with pytest.raises(OSError, match="disk full"):
        tiny_model.save(target, overwrite=True)
    assert (target / "model.safetensors").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]


def test_save_tensors_handles_shared_storage(tmp_path):
    weight = torch.randn(4, 4)
    save_tensors(tmp_path / "w.safetensors", {"a": weight, "b": weight})
    from omniembed.io import load_tensors

    loaded = load_tensors(tmp_path / "w.safetensors")
    assert torch.equal(loaded["a"], weight) and torch.equal(loaded["b"], weight)
