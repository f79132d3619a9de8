"""A non-finite loss or gradient norm never reaches the weights: the run stops (or skips the step, within
train.max_nonfinite_steps) naming the step and its samples, and a non-finite model is never exported."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
import torch

from omniembed.pretrain import distributed, trainer
from omniembed.pretrain.config import load_config
from omniembed.pretrain.export import export_model
from omniembed.pretrain.pair_plan import PairPlan
from omniembed.pretrain.nonfinite import NonFiniteGuard, NonFiniteTrainingError, nonfinite_tensors

from test_shards import make_pair_shards
from test_trainer import records, tiny_experiment, write_experiment

NAN = torch.tensor(float("nan"))


@pytest.fixture(scope="module")
def shapes(tmp_path_factory) -> Path:
    return make_pair_shards(tmp_path_factory.mktemp("shapes"), n=16)


def config(shapes: Path, tmp_path: Path, overrides: list[str] = ()):
    path = write_experiment(tmp_path / "exp.yaml", tiny_experiment(shapes, tmp_path / "out", steps=6))
    return load_config(path, ["train.checkpoint_every=2", *overrides])


def test_guard_stops_at_the_first_non_finite_step_naming_step_loss_norm_and_keys():
    guard = NonFiniteGuard()
    assert guard.check(3, torch.tensor(2.5), torch.tensor(0.7), ["s-0.tar:a"])
    with pytest.raises(NonFiniteTrainingError) as caught:
        guard.check(4, NAN, NAN, ["s-0.tar:a", "s-1.tar:b"])
    assert str(caught.value) == ("non-finite training at step 4: loss nan, gradient norm nan; samples: s-0.tar:a, "
                                 "s-1.tar:b — the update was not applied and the run stops (set "
                                 "train.max_nonfinite_steps to skip such steps instead)")


def test_guard_skips_up_to_the_limit_then_stops_and_shortens_long_key_lists():
    guard = NonFiniteGuard(max_skipped=2)
    keys = [f"s.tar:{i}" for i in range(40)]
    assert not guard.check(1, torch.tensor(1.0), torch.tensor(float("inf")), keys)
    assert guard.check(2, torch.tensor(1.0), torch.tensor(1.0), keys)
    assert not guard.check(3, NAN, NAN, keys)
    expected = ("s.tar:15, … (40 in all) — the update was not applied and the run stops (3 non-finite steps, more "
                "than train.max_nonfinite_steps=2)")
    with pytest.raises(NonFiniteTrainingError, match=re.escape(expected)):
        guard.check(5, NAN, NAN, keys)


def test_exploding_run_stops_at_the_step_naming_its_samples_and_exports_nothing(shapes, tmp_path):
    # lr 1e30: step 1's update is finite but enormous, step 2's forward overflows to inf/NaN
    run = config(shapes, tmp_path, ["optim.lr=1e30", "optim.warmup_steps=1"])
    with pytest.raises(NonFiniteTrainingError) as caught:
        trainer.train(run)
    message = str(caught.value)
    assert re.match(r"non-finite training at step 2: loss (nan|inf), gradient norm (nan|inf); samples: "
                    r"shard-00000\d\.tar:pair\d{3}, ", message), message
    assert len(re.findall(r"shard-\d{6}\.tar:pair\d{3}", message)) == 8  # the whole batch of 8
    assert not (tmp_path / "out" / "model").exists()
    checkpoints = tmp_path / "out" / "checkpoints"
    assert not checkpoints.exists() or not list(checkpoints.iterdir())  # stopped before step 2's checkpoint


def test_a_skipped_step_leaves_the_weights_as_they_were_and_the_run_finishes(shapes, tmp_path, monkeypatch):
    objective = trainer.PairObjective.__call__
    calls = []

    def nan_on_third_call(self, *args):
        loss, metrics = objective(self, *args)
        calls.append(1)
        return (loss * NAN, {**metrics, "loss": metrics["loss"] * NAN}) if len(calls) == 3 else (loss, metrics)

    monkeypatch.setattr(trainer.PairObjective, "__call__", nan_on_third_call)
    before = {}
    original_step = trainer.train_step

    def recording_step(module, *args):
        before[len(calls) + 1] = {k: v.clone() for k, v in module.state_dict().items()}
        out = original_step(module, *args)
        if len(calls) == 3:  # the poisoned step: nothing may have moved
            for key, value in module.state_dict().items():
                assert torch.equal(value, before[3][key]), key
        return out

    monkeypatch.setattr(trainer, "train_step", recording_step)
    exported = trainer.train(config(shapes, tmp_path, ["train.max_nonfinite_steps=1"]))
    losses = {r["step"]: r["loss"] for r in records(tmp_path / "out") if "loss" in r}
    assert math.isnan(losses[3]) and all(math.isfinite(v) for s, v in losses.items() if s != 3)
    assert len(losses) == 6 and json.loads((exported / "training.json").read_text())["steps"] == 6


def test_export_refuses_a_model_holding_nan(shapes, tmp_path):
    run = config(shapes, tmp_path)
    plan = PairPlan.from_config(run)
    model = trainer.build_model(run, plan)
    next(model.encoders["text"].parameters()).data[0] = float("nan")
    module = trainer.TrainingModule(model, run, plan)
    with pytest.raises(NonFiniteTrainingError, match=r"/model: 1 weight tensor\(s\) hold NaN or Inf \(first: "
                                                     r"encoders\.text\.[\w.]+\); a model that embeds"):
        export_model(module, model, run, plan, tmp_path / "model", distributed.setup("cpu"))
    assert not (tmp_path / "model").exists()
    assert nonfinite_tensors({"w": torch.ones(2), "inf": torch.tensor([1.0, float("inf")]),
                              "steps": torch.tensor([3])}) == ["inf"]  # integer tensors are not checked


def test_max_nonfinite_steps_must_not_be_negative(shapes, tmp_path):
    from omniembed.errors import ConfigError

    with pytest.raises(ConfigError, match="train.max_nonfinite_steps must be 0 or more, got -1"):
        config(shapes, tmp_path, ["train.max_nonfinite_steps=-1"])
