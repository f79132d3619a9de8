"""A new modality is one registered class: the core needs no change to build, embed, save and load it."""

import numpy as np
import pytest

import omniembed
from omniembed.errors import ConfigError, UnreadableInputError
from omniembed import registry
from omniembed.registry import get_modality, modality_for_suffix, register_modality

from sensor_modality import SensorModality


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
        "sensor": {"channels": 4, "window": 8}}}, seed=0)


def test_registered_modality_builds_embeds_saves_and_loads(tmp_path):
    model = sensor_model()
    path = tmp_path / "walk.sensor.csv"
    np.savetxt(path, np.random.default_rng(0).normal(size=(32, 4)), delimiter=",")
    assert model.modality_of(path) == "sensor"
    out = model.embed([path])
    assert out.shape == (1, 8)
    model.save(tmp_path / "ckpt")
    assert np.array_equal(omniembed.load(tmp_path / "ckpt").embed([path]), out)


def test_registered_modality_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.sensor.csv"
    bad.write_text("a,b,c\n")
    with pytest.raises(UnreadableInputError, match=r"bad\.sensor\.csv: not a CSV"):
        sensor_model().embed([bad])


def test_suffix_lookup_and_unknown_names():
    assert modality_for_suffix(".JPG") == "image"
    assert modality_for_suffix(".jpg", among=["text"]) is None
    assert get_modality("sensor") is SensorModality
    with pytest.raises(ConfigError, match="unknown model 'omni-huge'"):
        omniembed.create("omni-huge")


def test_registering_a_different_class_under_a_taken_name_fails():
    class Impostor(SensorModality):
        pass

    with pytest.raises(ConfigError, match="already registered"):
        register_modality(Impostor)
