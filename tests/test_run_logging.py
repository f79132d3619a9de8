"""What a run leaves beside its checkpoints: ``run.json`` (versions, world size, data fingerprint per launch),
``config.yaml`` (the resolved recipe), and the scalars in JSONL, TensorBoard and — offline — Weights & Biases."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml

from omniembed.pretrain import trainer
from omniembed.pretrain.config import load_config
from omniembed.pretrain.run_info import data_fingerprint

sys.path.insert(0, str(Path(__file__).parent))
from test_trainer import experiment, records, shapes  # noqa: E402,F401


def test_run_records_versions_world_size_and_data_fingerprint_per_launch(shapes, tmp_path):  # noqa: F811
    config = experiment(shapes, tmp_path, ["train.steps=2", "train.checkpoint_every=2", "optim.lr=1e-4"])
    trainer.train(config)
    out = tmp_path / "out"
    resolved = yaml.safe_load((out / "config.yaml").read_text())
    assert resolved["optim"]["lr"] == pytest.approx(1e-4) and resolved["train"]["accum_steps"] == 1
    launch, = json.loads((out / "run.json").read_text())["launches"]
    assert launch["world_size"] == 1 and launch["start_step"] == 0
    assert {"omniembed", "torch", "webdataset"} <= launch["versions"].keys()
    fingerprint = launch["data"]["shapes"]
    tars = sorted(shapes.parent.glob("*.tar"))
    assert fingerprint["content"] and fingerprint["shards"] == len(tars) > 1
    assert fingerprint["bytes"] == sum(t.stat().st_size for t in tars)
    assert fingerprint == data_fingerprint([str(shapes)])
    trainer.train(load_config(out / "config.yaml", ["train.steps=3"]), resume=True)
    first, second = json.loads((out / "run.json").read_text())["launches"]
    assert first == launch and second["start_step"] == 2 and second["data"] == first["data"]


def test_data_fingerprint_changes_with_a_shard_byte(shapes, tmp_path):  # noqa: F811
    for tar in shapes.parent.glob("*.tar"):
        (tmp_path / tar.name).write_bytes(tar.read_bytes())
    (tmp_path / "shards.json").write_text(shapes.read_text())
    copy = tmp_path / "shard-000000.tar"
    data = bytearray(copy.read_bytes())
    same = data_fingerprint([str(tmp_path / "shards.json")])
    assert same["sha256"] == data_fingerprint([str(shapes)])["sha256"]
    data[-600] ^= 1
    copy.write_bytes(data)
    assert data_fingerprint([str(tmp_path / "shards.json")])["sha256"] != same["sha256"]


def test_wandb_offline_run_logs_the_metrics_and_resumes_the_same_run(shapes, tmp_path, monkeypatch):  # noqa: F811
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb_dir"))
    monkeypatch.setenv("WANDB_SILENT", "true")
    overrides = ["train.steps=2", "train.checkpoint_every=2", "train.wandb={project: omniembed-test}"]
    trainer.train(experiment(shapes, tmp_path, overrides))
    out = tmp_path / "out"
    run_id = json.loads((out / "wandb.json").read_text())["id"]
    run_file, = (out / "wandb").glob(f"offline-run-*-{run_id}/run-{run_id}.wandb")
    # the offline run is a log of protobuf records; W&B stores each logged value as its JSON text
    logged = run_file.read_bytes()
    for record in records(out):
        assert json.dumps(record["loss"]).encode() in logged
        assert json.dumps(record["lr"]).encode() in logged
    assert b"omniembed-test" in logged and b'"accum_steps":1' in logged  # the project and the resolved recipe
    trainer.train(load_config(out / "config.yaml", ["train.steps=3"]), resume=True)
    assert json.loads((out / "wandb.json").read_text())["id"] == run_id
    assert len(list((out / "wandb").glob(f"offline-run-*-{run_id}"))) == 2  # the same W&B run, continued
    assert json.dumps(records(out)[-1]["loss"]).encode() in b"".join(
        p.read_bytes() for p in (out / "wandb").glob(f"offline-run-*-{run_id}/*.wandb"))
