"""A new modality is one registered class: the core needs no change to build, embed, save and load it."""

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import omniembed
from omniembed.config import ModalityConfig, TransformerConfig
from omniembed.encoder import ModalityEncoder
from omniembed.errors import ConfigError, UnreadableInputError
from omniembed.nn.heads import Postprocess, TokenHead
from omniembed.nn.tokens import PoolingHead, Tokens, TransformerTrunk
from omniembed.nn.transformer import Transformer
from omniembed import registry
from omniembed.registry import Modality, get_modality, modality_for_suffix, register_modality


@dataclass
class SensorConfig(ModalityConfig):
    channels: int = 4
    window: int = 8
    trunk: TransformerConfig = field(default_factory=lambda: TransformerConfig(width=16, depth=1, heads=2))


class WindowStem(nn.Module):
    """[B, C, T] → T/window tokens of C·window values, linearly embedded, plus a CLS token."""

    def __init__(self, cfg: SensorConfig):
        super().__init__()
        self.window = cfg.window
        self.proj = nn.Linear(cfg.channels * cfg.window, cfg.trunk.width)
        self.cls = nn.Parameter(torch.zeros(1, 1, cfg.trunk.width))

    def forward(self, x: torch.Tensor) -> Tokens:
        windows = x.unfold(2, self.window, self.window).permute(0, 2, 1, 3).flatten(2)
        tokens = self.proj(windows)
        return Tokens(torch.cat([self.cls.expand(len(x), -1, -1), tokens], 1))


class SensorModality(Modality):
    name = "test_sensor"
    config_cls = SensorConfig
    suffixes = (".sensor",)

    def load(self, path: Path) -> np.ndarray:
        try:
            return np.loadtxt(path, delimiter=",", ndmin=2)
        except ValueError as exc:
            raise UnreadableInputError(str(path), f"not a CSV of numbers ({exc})") from exc

    def preprocess(self, raw) -> torch.Tensor:
        return torch.as_tensor(raw, dtype=torch.float32)

    def build_encoder(self, embed_dim: int) -> ModalityEncoder:
        cfg = self.config
        return ModalityEncoder(WindowStem(cfg), TransformerTrunk(Transformer(cfg.trunk)),
                               PoolingHead(TokenHead(cfg.head, cfg.trunk.width, embed_dim)),
                               Postprocess(cfg.logit_scale))

    @classmethod
    def tiny_config(cls) -> SensorConfig:
        return SensorConfig()


@pytest.fixture(autouse=True)
def sensor_registered():
    """Register the test modality for this module's tests only: a leftover entry would join every model built
    from "all registered modalities" later in the session, and those could not be loaded by another process."""
    register_modality(SensorModality)
    yield
    del registry._MODALITIES[SensorModality.name]


def sensor_model():
    return omniembed.create({"embed_dim": 8, "anchor": "image", "modalities": {
        "image": {"image_size": 32, "trunk": {"width": 16, "depth": 1, "heads": 2}},
        "test_sensor": {"channels": 4, "window": 8}}}, seed=0)


def test_registered_modality_builds_embeds_saves_and_loads(tmp_path):
    model = sensor_model()
    path = tmp_path / "walk.sensor"
    np.savetxt(path, np.random.default_rng(0).normal(size=(4, 32)), delimiter=",")
    assert model.modality_of(path) == "test_sensor"
    out = model.embed([path])
    assert out.shape == (1, 8)
    model.save(tmp_path / "ckpt")
    assert np.array_equal(omniembed.load(tmp_path / "ckpt").embed([path]), out)


def test_registered_modality_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.sensor"
    bad.write_text("a,b,c\n")
    with pytest.raises(UnreadableInputError, match=r"bad\.sensor: not a CSV"):
        sensor_model().embed([bad])


def test_suffix_lookup_and_unknown_names():
    assert modality_for_suffix(".JPG") == "image"
    assert modality_for_suffix(".jpg", among=["text"]) is None
    assert get_modality("test_sensor") is SensorModality
    with pytest.raises(ConfigError, match="unknown model 'omni-huge'"):
        omniembed.create("omni-huge")


def test_registering_a_different_class_under_a_taken_name_fails():
    class Impostor(SensorModality):
        pass

    with pytest.raises(ConfigError, match="already registered"):
        register_modality(Impostor)
