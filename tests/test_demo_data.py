"""The demo's data stage reuses a finished build only when the same builder made it with the same settings."""

from __future__ import annotations

import json
from dataclasses import asdict

from omniembed.datasets import omnidigits
from omniembed.datasets.omnidigits import BUILD_VERSION, MANIFEST_FILE, Manifest
from omniembed.demo import DemoConfig, build_data


def write_build(directory, config: DemoConfig, version: int) -> None:
    directory.mkdir(parents=True)
    counts = {"train": {"image": config.n_train}, "test": {"image": config.n_test}}
    manifest = Manifest(source="offline", seed=config.seed, modalities=["image"], counts=counts, version=version)
    (directory / MANIFEST_FILE).write_text(json.dumps(asdict(manifest)))


def test_a_build_by_an_older_builder_is_made_again_and_a_current_one_reused(tmp_path, monkeypatch):
    config = DemoConfig(out=tmp_path, source="offline", n_train=8, n_test=4)
    built = []
    monkeypatch.setattr(omnidigits, "build_omnidigits", lambda directory, **kw: built.append(directory) or
                        Manifest(source="offline", seed=0, modalities=["image"], counts={}))
    write_build(tmp_path / "old", config, version=BUILD_VERSION - 1)
    write_build(tmp_path / "current", config, version=BUILD_VERSION)
    lines = []
    assert build_data(config, tmp_path / "old", lines.append) == tmp_path / "old"
    assert build_data(config, tmp_path / "current", lines.append) == tmp_path / "current"
    assert built == [tmp_path / "old"]
    assert any("reusing" in line and "current" in line for line in lines)
