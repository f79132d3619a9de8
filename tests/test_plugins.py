"""An out-of-tree modality, installed as a distribution that declares it in the ``omniembed.modalities`` entry-point
group, works with ``omniembed.create``/``save``/``load`` and the command line without any edit to omniembed; a broken
plug-in is skipped with a warning and named when its modality is asked for, and takes no other modality down.

The plug-ins are installed into a folder made for the test (the module and its ``*.dist-info`` with
``entry_points.txt``, as an installer writes them) that only the test's subprocesses put on their path: nothing is
installed into the test environment, so nothing needs cleaning up and parallel runs cannot see each other's plug-ins.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

PLUGIN_MODULE = Path(__file__).with_name("sensor_modality.py").read_text()
"""The sensor modality test_registry registers in-process, shipped here as a plug-in distribution's module."""

MODEL = {"name": "sensor-demo", "embed_dim": 8, "anchor": "image", "modalities": {
    "image": {"image_size": 32, "trunk": {"width": 16, "depth": 1, "heads": 2}},
    "sensor": {"samples": 32, "window": 8}}}


def install(site: Path, distribution: str, entry_points: dict[str, str], modules: dict[str, str]) -> None:
    """What an installer leaves in ``site`` for a distribution: its modules and a dist-info that declares
    ``entry_points`` (modality name → ``module:Class``) in the ``omniembed.modalities`` group."""
    for name, source in modules.items():
        (site / f"{name}.py").write_text(source)
    info = site / f"{distribution.replace('-', '_')}-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {distribution}\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text(
        "[omniembed.modalities]\n" + "".join(f"{k} = {v}\n" for k, v in entry_points.items()))
    (info / "RECORD").write_text("".join(f"{name}.py,,\n" for name in modules) + f"{info.name}/METADATA,,\n")


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """A site folder holding the sensor plug-in and one whose entry point names a module that does not exist."""
    folder = tmp_path_factory.mktemp("site")
    install(folder, "omniembed-sensor-plugin", {"sensor": "omniembed_sensor_plugin:SensorModality"},
            {"omniembed_sensor_plugin": PLUGIN_MODULE})
    install(folder, "omniembed-broken-plugin", {"lidar": "omniembed_lidar_missing:LidarModality"}, {})
    return folder


@pytest.fixture(scope="module")
def sensor_files(tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("series")
    rng = np.random.default_rng(0)
    paths = [folder / f"reading{i}.sensor.csv" for i in range(3)]
    for path in paths:
        np.savetxt(path, rng.standard_normal(32))
    return paths


def run(site: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=300, env=env)


ROUND_TRIP = """
import json, sys, warnings
import omniembed
from omniembed.errors import ConfigError
from omniembed.registry import get_modality

model_config, out, *files = json.loads(sys.argv[1])
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    model = omniembed.create(model_config, seed=0)
before = model.embed(files)
model.save(out)
after = omniembed.load(out).embed(files)
try:
    get_modality("lidar")
    lidar = None
except ConfigError as exc:
    lidar = str(exc)
print(json.dumps({"before": before.tolist(), "after": after.tolist(), "lidar": lidar,
                  "modalities": omniembed.list_modalities(), "warnings": [str(w.message) for w in caught]}))
"""


@pytest.fixture(scope="module")
def round_trip(site, sensor_files, tmp_path_factory) -> tuple[dict, Path]:
    """One process with the plug-ins installed: create a model with the sensor modality, embed, save, load, embed
    again, and ask for the broken plug-in's modality. Returns its report and the saved model's folder."""
    model_dir = tmp_path_factory.mktemp("plugin_model") / "model"
    done = run(site, "-c", ROUND_TRIP, json.dumps([MODEL, str(model_dir), *map(str, sensor_files)]))
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout), model_dir


def test_an_installed_plugin_modality_creates_embeds_saves_and_loads(round_trip):
    result, model_dir = round_trip
    before, after = np.array(result["before"]), np.array(result["after"])
    assert before.shape == (3, 8)
    np.testing.assert_allclose(np.linalg.norm(before, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(after, before)
    assert abs(before[0] @ before[1]) < 0.999  # different series, different vectors
    assert "sensor" in result["modalities"] and "image" in result["modalities"]
    config = json.loads((model_dir / "config.json").read_text())
    assert config["modalities"]["sensor"] == {**config["modalities"]["sensor"], "samples": 32, "window": 8}


def test_a_broken_plugin_is_skipped_with_a_warning_and_named_when_its_modality_is_asked_for(round_trip):
    result, _ = round_trip
    assert "lidar" not in result["modalities"]
    assert "omniembed-broken-plugin" in result["lidar"] and "omniembed_lidar_missing" in result["lidar"]
    assert [w for w in result["warnings"] if "omniembed-broken-plugin" in w]


def test_the_command_line_embeds_with_a_plugin_modality_it_was_never_told_about(site, sensor_files, round_trip,
                                                                              tmp_path):
    result, model_dir = round_trip
    out = tmp_path / "vectors.npy"
    embedded = run(site, "-m", "omniembed.cli", "embed", "--model", str(model_dir), "--out", str(out),
                   *map(str, sensor_files))
    assert embedded.returncode == 0, embedded.stderr
    rows = [json.loads(line) for line in out.with_suffix(".jsonl").read_text().splitlines()]
    assert [r["modality"] for r in rows] == ["sensor"] * 3
    by_path = dict(zip(map(str, sensor_files), result["after"]))
    np.testing.assert_allclose(np.load(out), [by_path[r["path"]] for r in rows], atol=1e-6)


def test_without_the_plugin_installed_its_modality_is_unknown_and_named(sensor_files, tmp_path):
    code = "import omniembed, sys\nomniembed.create(__import__('json').loads(sys.argv[1]))"
    done = run(tmp_path, "-c", code, json.dumps(MODEL))
    assert done.returncode != 0
    assert "unknown modality 'sensor'" in done.stderr and "registered: audio, depth, image" in done.stderr
