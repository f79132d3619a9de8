"""Resuming a run whose checkpoint pointer or newest checkpoint is damaged: a named message and a fallback to the
previous complete checkpoint, never a raw traceback (issue 17, item 8)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from omniembed.errors import CheckpointError
from omniembed.pretrain import trainer
from omniembed.pretrain.checkpoint import checkpoint_candidates, load_checkpoint
from omniembed.pretrain.config import load_config
from omniembed.pretrain.pair_plan import PairPlan

from test_shards import make_pair_shards
from test_trainer import records, tiny_experiment, write_experiment


@pytest.fixture(scope="module")
def shapes(tmp_path_factory) -> Path:
    return make_pair_shards(tmp_path_factory.mktemp("shapes"), n=16)


def config(shapes: Path, tmp_path: Path, steps: int):
    path = write_experiment(tmp_path / "exp.yaml", tiny_experiment(shapes, tmp_path / "out", steps=steps))
    return load_config(path, ["train.checkpoint_every=2", "train.keep_checkpoints=3"])


def test_garbage_latest_json_and_a_truncated_newest_checkpoint_fall_back_to_the_previous_one(shapes, tmp_path,
                                                                                             capsys):
    trainer.train(config(shapes, tmp_path, steps=4))
    root = tmp_path / "out" / "checkpoints"
    assert sorted(p.name for p in root.glob("step_*")) == ["step_00000002", "step_00000004"]
    (root / "latest.json").write_text("{garbage")
    weights = root / "step_00000004" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])  # a copy cut short
    capsys.readouterr()

    trainer.train(config(shapes, tmp_path, steps=6), resume=True)
    err = capsys.readouterr().err
    assert f"resume: {root / 'latest.json'} is unreadable (JSONDecodeError: " in err
    assert (f"resume: checkpoint step_00000004 is damaged ({weights}: cannot read safetensors weights (" in err
            and "); falling back to the previous complete one, step_00000002" in err)
    assert "resume: resumed from step_00000002 (step 2)" in err
    assert [r["step"] for r in records(tmp_path / "out") if "loss" in r] == [1, 2, 3, 4, 5, 6]
    assert json.loads((root / "latest.json").read_text())["path"] == "step_00000006"


def test_a_damaged_checkpoint_restores_nothing_and_when_all_are_damaged_the_error_names_them(shapes, tmp_path):
    trainer.train(config(shapes, tmp_path, steps=4))
    root = tmp_path / "out" / "checkpoints"
    (root / "step_00000004" / "rng.safetensors").write_bytes(b"\0" * 16)  # the last file read
    (root / "step_00000002" / "trainer.json").write_text('{"format": ')
    assert checkpoint_candidates(tmp_path / "out") == [root / "step_00000004", root / "step_00000002"]

    run = config(shapes, tmp_path, steps=6)
    plan = PairPlan.from_config(run)
    model = trainer.build_model(run, plan)
    module = trainer.TrainingModule(model, run, plan)
    before = {k: v.clone() for k, v in module.state_dict().items()}
    optimizer = trainer.build_optimizer(module, run)
    scheduler = trainer.cosine_schedule(optimizer, 1, 6)
    from omniembed.pretrain.distributed import setup

    with pytest.raises(CheckpointError, match="rng.safetensors: cannot read safetensors weights"):
        load_checkpoint(root / "step_00000004", module, optimizer, scheduler, setup("cpu"))
    assert all(torch.equal(v, before[k]) for k, v in module.state_dict().items())  # nothing half-restored

    with pytest.raises(CheckpointError) as caught:
        trainer.train(run, resume=True)
    assert str(caught.value) == (f"{root}: no checkpoint reads back whole (step_00000004, step_00000002 are "
                                 "damaged)")
