"""Alternative encoders are one tagged field, ``tower: {kind: ...}``, read by the generic config loader; configs,
checkpoints and recipe overrides written with the old per-encoder keys (``timm:``, ``tdnn:``, ``open_clip:``,
``hf_tower:``) are converted as they are read."""

from __future__ import annotations

import json

import numpy as np
import pytest

import omniembed
from omniembed.config import to_dict
from omniembed.model_config import ModelConfig
from omniembed.errors import ConfigError
from omniembed.modalities.audio import AudioConfig
from omniembed.nn.tdnn import TdnnConfig
from omniembed.nn.timm_trunk import TimmConfig
from omniembed.pretrain import trainer

AUDIO = {"sample_rate": 8000, "n_mels": 16, "n_clips": 1, "clip_seconds": 0.5, "target_frames": 40}
TEXT = {"context_length": 8, "trunk": {"width": 32, "depth": 1, "heads": 2, "causal": True}}


def test_a_tower_is_written_with_its_kind_and_read_back_as_its_class():
    config = ModelConfig.from_dict({"embed_dim": 8, "anchor": "text", "modalities": {
        "text": TEXT, "audio": {**AUDIO, "tower": {"kind": "tdnn", "width": 24}}}})
    assert config.modalities["audio"].tower == TdnnConfig(width=24)
    written = config.to_dict()["modalities"]["audio"]["tower"]
    assert written == {"kind": "tdnn", "width": 24, "kernels": [5, 3, 3], "dilations": [1, 2, 3], "bn_eps": 1e-5,
                       "pool": "all"}
    assert "tdnn" not in config.to_dict()["modalities"]["audio"]
    assert ModelConfig.from_dict(config.to_dict()) == config


def test_a_tower_kind_outside_the_modality_s_alternatives_names_the_key_and_the_kinds():
    with pytest.raises(ConfigError, match=r"^modalities\.audio\.tower\.kind 'hf_tower' is not one of "
                                          r"\['timm', 'tdnn', 'speech_embedding'\]$"):
        ModelConfig.from_dict({"modalities": {"audio": {"tower": {"kind": "hf_tower", "path": "x"}}},
                               "anchor": "audio"})
    with pytest.raises(ConfigError, match=r"modalities\.audio\.tower: needs 'kind', one of "
                                          r"\['timm', 'tdnn', 'speech_embedding'\]"):
        ModelConfig.from_dict({"modalities": {"audio": {"tower": {"width": 8}}}, "anchor": "audio"})


def test_a_checkpoint_saved_with_the_old_keys_loads_with_the_same_weights_and_embeddings(tmp_path):
    model = omniembed.create({"embed_dim": 8, "anchor": "text", "modalities": {
        "text": TEXT, "audio": {**AUDIO, "tower": {"kind": "tdnn", "width": 16, "kernels": [3],
                                                   "dilations": [1]}}}}, seed=0)
    model.save(tmp_path / "m")
    path = tmp_path / "m" / "config.json"
    data = json.loads(path.read_text())
    tower = data["modalities"]["audio"].pop("tower")
    del tower["kind"]
    data["modalities"]["audio"].update(timm=None, tdnn=tower)  # as config.json was written before `tower`
    data["modalities"]["text"].update(hf_tower=None, open_clip=None)
    path.write_text(json.dumps(data))
    old = omniembed.load(tmp_path / "m")
    assert old.config.modalities["audio"].tower == TdnnConfig(width=16, kernels=[3], dilations=[1])
    wave = np.sin(np.arange(4000) / 7).astype(np.float32)
    np.testing.assert_array_equal(old.embed([wave], modality="audio"), model.embed([wave], modality="audio"))
    assert old.fingerprint() == model.fingerprint()


def test_old_style_keys_that_choose_two_encoders_are_refused_naming_both():
    with pytest.raises(ConfigError, match=r"modalities\.audio\.tdnn and modalities\.audio\.tower each choose the "
                                          r"encoder"):
        ModelConfig.from_dict({"anchor": "audio", "modalities": {"audio": {
            "tdnn": {"width": 8}, "tower": {"kind": "timm", "name": "resnet10t"}}}})


def test_a_recipe_override_through_an_old_key_reaches_the_tower():
    data = {"modalities": {"audio": {**to_dict(AudioConfig(tower=TdnnConfig(width=128)))}}}
    trainer._set_path(data, "modalities.audio.tdnn.width", 32)
    assert data["modalities"]["audio"]["tower"]["width"] == 32
    trainer._set_path(data, "modalities.audio.tower.width", 48)
    assert data["modalities"]["audio"]["tower"] == to_dict(TdnnConfig(width=48))  # kind included
    image = {"tower": to_dict(TimmConfig(name="resnet10t"))}
    with pytest.raises(ConfigError, match="'image.tdnn.width' does not name a model config key"):
        trainer._set_path({"image": image}, "image.tdnn.width", 8)


def test_the_untagged_spelling_the_fingerprint_hashes_is_the_layout_configs_had_before_tower():
    data = to_dict(AudioConfig(tower=TdnnConfig(width=24)), untagged=True)
    keys = list(data)
    assert "tower" not in data and keys[keys.index("timm") + 1] == "tdnn"  # where timm/tdnn stood in AudioConfig
    assert data["timm"] is None
    assert data["tdnn"] == {"width": 24, "kernels": [5, 3, 3], "dilations": [1, 2, 3], "bn_eps": 1e-5,
                       "pool": "all"}
    assert to_dict(AudioConfig(), untagged=True)["tdnn"] is None
