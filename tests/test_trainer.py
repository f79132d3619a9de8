"""The pretraining loop in one process: config, freezing/LoRA, optimizer groups, schedule, a short real run."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from torch._dynamo.utils import counters

import omniembed
from omniembed.errors import ConfigError
from omniembed.io import load_tensors
from omniembed.pretrain import data as pretrain_data
from omniembed.pretrain import trainer
from omniembed.pretrain.config import load_config
from omniembed.pretrain import distributed
from omniembed.pretrain.distributed import env_from_slurm
from omniembed.pretrain.export import training_provenance
from omniembed.pretrain.lora import LoRALinear, merge_lora_state
from omniembed.pretrain.pair_plan import PairPlan
from omniembed.pretrain.parallel import needs_unused_search

from test_shards import TINY, colour_of, grouped_shards, make_pair_shards

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "pretrain" / "recipes" / "image_text_tiny.yaml"


def tiny_experiment(index: Path, out_dir: Path, **train: object) -> dict:
    """A whole experiment on the shapes shards with 16-d embeddings, 32-wide one-block towers, 32 px images."""
    return {
        "model": {"init": "omni-tiny", "frozen": [], "overrides": {
            "embed_dim": TINY["embed_dim"], "modalities.image.image_size": 32,
            "modalities.image.trunk": TINY["modalities"]["image"]["trunk"],
            "modalities.text.trunk": TINY["modalities"]["text"]["trunk"]}},
        "data": {"datasets": [{"name": "shapes", "shards": [str(index)], "pairs": [["image", "text"]]}],
                 "batch_size": 8, "streams": 2, "num_workers": 0, "shuffle_buffer": 8},
        "optim": {"lr": 1e-3, "warmup_steps": 3},
        "train": {"steps": 30, "checkpoint_every": 10, "log_every": 1, "progress": False, "tensorboard": False,
                  "out_dir": str(out_dir), **train},
    }


def write_experiment(path: Path, experiment: dict) -> Path:
    path.write_text(yaml.safe_dump(experiment))
    return path


def records(out_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (out_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def shapes(tmp_path_factory) -> Path:
    return make_pair_shards(tmp_path_factory.mktemp("shapes"), n=32, corrupt=2)


# ---- config ----------------------------------------------------------------------------------------------------
def test_recipe_loads_by_path_or_name_and_command_line_overrides_win():
    assert load_config("image_text_tiny") == load_config(RECIPE)
    config = load_config(RECIPE, ["optim.lr=1e-4", "data.datasets.0.weight=2", "model.frozen=[]",
                                  "model.overrides.modalities.image.image_size=48"])
    assert config.optim.lr == 1e-4 and config.data.datasets[0].weight == 2.0 and config.model.frozen == []
    assert config.model.overrides["modalities.image.image_size"] == 48
    assert config.data.datasets[0].pairs == [["image", "text"]]


@pytest.mark.parametrize("override, message", [
    ("optim.lrr=1", "unknown config key(s) in optim: lrr"),
    ("train.steps=many", "train.steps: expected an integer"),
    ("data.datasets.5.weight=1", "not an index"),
    ("loss.kind=triplet", "loss.kind"),
])
def test_bad_override_names_the_key(override, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(RECIPE, [override])


# ---- what learns -----------------------------------------------------------------------------------------------
def experiment(index: Path, tmp_path: Path, overrides: list[str] = ()):
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = write_experiment(tmp_path / "exp.yaml", tiny_experiment(index, tmp_path / "out"))
    return load_config(path, list(overrides))


def test_anchor_is_frozen_by_default_and_only_paired_scales_learn(shapes, tmp_path):
    config = experiment(shapes, tmp_path, ["model.frozen=null"])
    plan = PairPlan.from_config(config)
    model = trainer.build_model(config, plan)
    counts = trainer.configure_trainable(model, config, plan)
    assert counts["image"] == 0 and counts["text"] > 0
    assert model.encoders["text"].postprocess.logit_scale.log_scale.requires_grad
    module = trainer.TrainingModule(model, config, plan).train()
    assert not model.encoders["image"].training and model.encoders["text"].training


def test_towers_no_pair_uses_are_built_frozen_for_a_later_stage(shapes, tmp_path):
    # stage 1 of a staged recipe builds every tower; video (no logit scale of its own) and audio stay untouched
    config = experiment(shapes, tmp_path, ["model.modalities=[image, text, audio, video]"])
    plan = PairPlan.from_config(config)
    model = trainer.build_model(config, plan)
    counts = trainer.configure_trainable(model, config, plan)
    assert set(model.modalities) == {"image", "text", "audio", "video"}
    assert counts["audio"] == counts["video"] == 0 and counts["image"] > 0 and counts["text"] > 0
    assert not needs_unused_search(trainer.TrainingModule(model, config, plan), plan)


def test_a_run_from_an_exported_model_records_the_pairs_it_was_trained_on_before(shapes, tmp_path):
    earlier = tmp_path / "anchor"
    earlier.mkdir()
    (earlier / "training.json").write_text(json.dumps({"pairs": [["image", "text"]], "datasets": ["captions"],
                                                       "steps": 500}))
    config = experiment(shapes, tmp_path, [f"model.init={earlier}", "data.datasets.0.pairs=[[image, audio]]"])
    record = training_provenance(config, PairPlan.from_config(config))
    assert record["pairs"] == [["audio", "image"], ["image", "text"]]
    assert record["init"] == {"from": str(earlier), "pairs": [["image", "text"]], "datasets": ["captions"],
                              "steps": 500}
    fresh = experiment(shapes, tmp_path / "fresh")
    assert "init" not in training_provenance(fresh, PairPlan.from_config(fresh))


def test_anchor_lora_trains_only_the_adapters_and_merges_exactly(shapes, tmp_path):
    config = experiment(shapes, tmp_path, ["model.frozen=[image, text]", "model.anchor_lora={rank: 4, alpha: 8}"])
    plan = PairPlan.from_config(config)
    model = trainer.build_model(config, plan)
    images = torch.randn(3, 3, 32, 32)
    before = model.encode("image", images)
    trainer.configure_trainable(model, config, plan)
    learning = [n for n, p in model.named_parameters() if p.requires_grad]
    assert learning and all(n.startswith("encoders.image.trunk.") and n.endswith((".lora_a", ".lora_b"))
                            for n in learning)
    assert sum(isinstance(m, LoRALinear) for m in model.modules()) == 4  # qkv, proj, fc1, fc2 of one block
    torch.testing.assert_close(model.encode("image", images), before, rtol=0, atol=0)  # B starts at zero

    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    optimizer = trainer.build_optimizer(model, config)
    for _ in range(2):
        optimizer.zero_grad()
        model.encode("image", images).pow(3).sum().backward()
        optimizer.step()
    assert all(torch.equal(p, frozen[n]) for n, p in model.named_parameters() if n in frozen)
    adapted = model.encode("image", images).detach()
    assert not torch.allclose(adapted, before)

    merged = merge_lora_state(model.state_dict(), 8 / 4)
    plain = omniembed.OmniEmbedModel(model.config)
    plain.load_state_dict(merged, strict=True)
    torch.testing.assert_close(plain.encode("image", images), adapted, rtol=0, atol=1e-6)


def test_optimizer_skips_weight_decay_on_norms_biases_and_logit_scales(shapes, tmp_path):
    config = experiment(shapes, tmp_path)
    plan = PairPlan.from_config(config)
    model = trainer.build_model(config, plan)
    trainer.configure_trainable(model, config, plan)
    optimizer = trainer.build_optimizer(model, config)
    names = {id(p): n for n, p in model.named_parameters()}
    decay, no_decay = ([names[id(p)] for p in g["params"]] for g in optimizer.param_groups)
    assert optimizer.param_groups[1]["weight_decay"] == 0.0
    assert "encoders.text.postprocess.logit_scale.log_scale" in no_decay
    assert all(n.endswith(("bias", "weight")) and ("norm" in n or n.endswith("bias")) or "log_scale" in n
               for n in no_decay)
    assert "encoders.text.trunk.transformer.blocks.0.attn.qkv.weight" in decay
    assert not any("norm" in n or n.endswith(".bias") for n in decay)


def test_cosine_schedule_warms_up_linearly_then_decays_to_the_floor():
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(2))], lr=1.0)
    schedule = trainer.cosine_schedule(optimizer, warmup=4, total=14, min_ratio=0.1)
    lrs = []
    for _ in range(14):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    assert lrs[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert lrs[9] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(lrs[3:], lrs[4:]))


def test_slurm_variables_become_torchrun_variables():
    env = {"SLURM_PROCID": "5", "SLURM_NTASKS": "8", "SLURM_LOCALID": "1", "MASTER_ADDR": "node17"}
    assert env_from_slurm(env) == {"RANK": "5", "WORLD_SIZE": "8", "LOCAL_RANK": "1", "MASTER_ADDR": "node17",
                                   "MASTER_PORT": "29500"}
    assert env_from_slurm({**env, "RANK": "0"}) == {}  # torchrun inside an allocation wins
    with pytest.raises(ConfigError, match="MASTER_ADDR"):
        env_from_slurm({"SLURM_PROCID": "0", "SLURM_NTASKS": "2"})



def test_exit_process_flushes_buffered_output_and_skips_finalisation():
    code = ("import atexit, sys\n"
            "from omniembed.pretrain.distributed import exit_process\n"
            "atexit.register(lambda: print('finalised'))\n"
            "print('buffered', end='')\n"
            "sys.stderr.write('unflushed')\n"
            "exit_process(3)\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # a pipe is block-buffered
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert (done.returncode, done.stdout) == (3, "buffered")
    assert done.stderr.endswith("unflushed")


@pytest.mark.parametrize("world, ends", [("2", True), ("1", False)])
def test_main_ends_a_process_of_a_multi_process_run_instead_of_returning(monkeypatch, tmp_path, world, ends):
    ended = []
    monkeypatch.setenv("WORLD_SIZE", world)
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setattr(trainer, "train", lambda config, resume: tmp_path / "model")
    monkeypatch.setattr(distributed, "exit_process", ended.append)
    assert trainer.main([str(RECIPE), f"train.out_dir={tmp_path}"]) == 0
    assert ended == ([0] if ends else [])

# ---- a short real run ------------------------------------------------------------------------------------------
def test_single_process_run_logs_pairs_calls_eval_and_exports_a_loadable_model(shapes, tmp_path):
    config = experiment(shapes, tmp_path, ["train.steps=12", "train.log_every=4", "train.eval_every=6",
                                           "train.tensorboard=true", "train.checkpoint_every=5"])
    seen = []

    def hook(model, step):
        seen.append((step, model.training))
        return {"probe": float(step)}

    exported = trainer.train(config, eval_hook=hook)
    out = tmp_path / "out"
    rows = records(out)
    steps = [r["step"] for r in rows if "loss" in r]
    assert steps == [4, 8, 12] and seen == [(6, False), (12, False)]
    assert [r["eval/probe"] for r in rows if "eval/probe" in r] == [6.0, 12.0]
    last = [r for r in rows if "loss" in r][-1]
    assert last["loss"] == pytest.approx(last["loss/image-text"])
    assert last["temperature/image-text"] == pytest.approx(1 / last["logit_scale/image-text"])
    assert 0 <= last["top1/image-text/a_to_b"] <= 1
    assert last["data/read"] >= 12 * 8 and last["data/corrupt"] >= 1
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))
    assert sorted(p.name for p in (out / "checkpoints").glob("step_*")) == ["step_00000010", "step_00000012"]

    model = omniembed.load(exported)
    assert json.loads((exported / "training.json").read_text())["pairs"] == [["image", "text"]]
    trained = load_tensors(out / "checkpoints" / "step_00000012" / "model.safetensors")
    for key, value in model.state_dict().items():
        assert torch.equal(value, trained["model." + key]), key
    with pytest.raises(ConfigError, match="--resume"):
        trainer.train(config)


def mixture(index: Path) -> list[dict]:
    """Two datasets over the same shards: captions (image → text) and a two-pair 'triplet' style (both ways)."""
    return [{"name": "captions", "shards": [str(index)], "pairs": [["image", "text"]], "weight": 3.0},
            {"name": "both_ways", "shards": [str(index)], "pairs": [["image", "text"], ["text", "image"]],
             "weight": 1.0, "loss_weights": [1.0, 0.5], "batch_size": 4}]


def test_mixture_draws_datasets_by_weight_and_scores_every_pair(shapes, tmp_path):
    exp = tiny_experiment(shapes, tmp_path / "out", steps=16)
    exp["data"]["datasets"] = mixture(shapes)
    config = load_config(write_experiment(tmp_path / "exp.yaml", exp))
    trainer.train(config)
    rows = records(tmp_path / "out")
    by_name = {name: [r for r in rows if r["dataset"] == name] for name in ("captions", "both_ways")}
    assert len(by_name["captions"]) > len(by_name["both_ways"]) > 0
    mixed = by_name["both_ways"][0]
    assert mixed["loss"] == pytest.approx(mixed["loss/image-text"] + 0.5 * mixed["loss/text-image"], rel=1e-6)
    assert "loss/text-image" not in by_name["captions"][0]
    assert "temperature/text-image" in mixed  # the image tower's own logit scale, learning in this run


def test_siglip_run_learns_a_bias_per_pair_and_exports_without_it(shapes, tmp_path):
    config = experiment(shapes, tmp_path, ["loss.kind=siglip", "train.steps=4",
                                           "model.overrides.modalities.text.logit_scale.init=10.0"])
    exported = trainer.train(config)
    rows = records(tmp_path / "out")
    assert rows[0]["logit_scale/image-text"] == pytest.approx(10.0, rel=1e-2)
    assert rows[-1]["logit_bias/image-text"] != -10.0
    trained = load_tensors(tmp_path / "out" / "checkpoints" / "step_00000004" / "model.safetensors")
    assert "logit_bias.image-text" in trained
    assert not any("logit_bias" in k for k in omniembed.load(exported).state_dict())


@pytest.mark.parametrize("accum", [1, 2])
def test_a_dataset_group_key_reaches_the_loss_as_each_rows_group(tmp_path, monkeypatch, accum):
    index = grouped_shards(tmp_path / "data", n=16, maxcount=8)
    exp = tiny_experiment(index, tmp_path / "out", steps=3, accum_steps=accum)
    exp["data"]["datasets"][0]["group_key"] = "cls"
    seen = []
    scored = trainer.PairObjective.__call__

    def recording(self, dataset, embeddings, scales, biases, groups=None):
        seen.append(groups)
        return scored(self, dataset, embeddings, scales, biases, groups)

    real_next = trainer.PairLoader.__next__
    batches = []
    monkeypatch.setattr(trainer.PairObjective, "__call__", recording)
    monkeypatch.setattr(trainer.PairLoader, "__next__", lambda self: batches.append(real_next(self)) or batches[-1])
    trainer.train(load_config(write_experiment(tmp_path / "exp.yaml", exp)))
    assert len(seen) == 3 * accum  # accumulation scores the whole batch once per micro-batch
    for i, batch in enumerate(batches):
        expected = [pretrain_data.group_id(colour_of(k), k) for k in batch.keys]
        for groups in seen[i * accum:(i + 1) * accum]:
            assert groups.tolist() == expected


class Interrupted(Exception):
    pass


def test_interrupted_run_with_drop_path_and_augmentation_resumes_exactly(shapes, tmp_path):
    """Drop-path draws from the training RNG: resuming must restore it (and the loader must not consume it);
    augmentation draws from a generator of the step, so a resumed run augments as an uninterrupted one."""
    overrides = ["train.steps=9", "train.checkpoint_every=4", "model.overrides.modalities.text.trunk.drop_path=0.3",
                 "model.overrides.modalities.text.trunk.depth=2",  # rates rise from 0 over the blocks
                 "data.num_workers=1", "data.augment={image: {kind: affine, min_scale: 0.5, degrees: 15}}"]
    straight = trainer.train(experiment(shapes, tmp_path / "a", overrides))

    def crash(model, step):
        raise Interrupted(step)

    config = experiment(shapes, tmp_path / "b", overrides + ["train.eval_every=6"])
    with pytest.raises(Interrupted):
        trainer.train(config, eval_hook=crash)
    resumed = trainer.train(experiment(shapes, tmp_path / "b", overrides), resume=True)
    a, b = load_tensors(straight / "model.safetensors"), load_tensors(resumed / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert [r["loss"] for r in records(tmp_path / "a" / "out")] == [r["loss"] for r in records(tmp_path / "b" / "out")]


def parse_train_command(argv: list[str]):
    import argparse

    from omniembed.commands import train as command

    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    return command, command.parse_tail(parser.parse_args(argv))


def test_train_command_takes_options_anywhere_and_builds_the_torchrun_line():
    command, args = parse_train_command(["--nproc", "4", "cfg.yaml", "optim.lr=1e-4", "--resume", "train.steps=9"])
    assert (args.config, args.overrides, args.nproc, args.resume) == ("cfg.yaml", ["optim.lr=1e-4", "train.steps=9"],
                                                                      4, True)
    assert command.torchrun_command(4, args)[2:] == ["torch.distributed.run", "--nproc_per_node=4", "--standalone",
                                                     "-m", "omniembed.pretrain.trainer"]
    _, multi = parse_train_command(["cfg.yaml", "--nproc", "8", "--nnodes", "2", "--node-rank", "1",
                                    "--master-addr", "10.0.0.5"])
    assert command.torchrun_command(8, multi)[3:8] == ["--nproc_per_node=8", "--nnodes=2", "--node_rank=1",
                                                       "--rdzv_backend=c10d", "--rdzv_endpoint=10.0.0.5:29500"]


def test_omniembed_train_runs_one_process_in_place(shapes, tmp_path, monkeypatch):
    from omniembed import cli

    # the subcommand's registration (the lead's line in cli.COMMANDS)
    monkeypatch.setitem(cli.COMMANDS, "train", ("omniembed.commands.train", "contrastive pretraining"))
    config = write_experiment(tmp_path / "exp.yaml", tiny_experiment(shapes, tmp_path / "out", steps=3))
    assert cli.main(["train", str(config), "--nproc", "1", "train.log_every=3"]) == 0
    assert [r["step"] for r in records(tmp_path / "out")] == [3]
    assert omniembed.load(tmp_path / "out" / "model").modalities == ["image", "text"]


@pytest.mark.parametrize("recipe", sorted((REPO / "pretrain" / "recipes").glob("*.yaml")), ids=lambda p: p.stem)
def test_every_recipe_is_a_valid_experiment(recipe):
    config = load_config(recipe)
    assert config.data.datasets and all(ds.pairs for ds in config.data.datasets)


def test_gradient_checkpointing_changes_memory_not_results(shapes, tmp_path):
    plain = experiment(shapes, tmp_path / "plain", ["train.steps=3"])
    checkpointed = experiment(shapes, tmp_path / "ckpt", ["train.steps=3", "model.grad_checkpointing=true"])
    plan = PairPlan.from_config(checkpointed)
    model = trainer.build_model(checkpointed, plan)
    trainer.configure_trainable(model, checkpointed, plan)
    assert all(e.trunk.transformer.grad_checkpointing for e in model.encoders.values())
    trainer.train(plain)
    trainer.train(checkpointed)
    assert [r["loss"] for r in records(tmp_path / "plain" / "out")] == \
        [r["loss"] for r in records(tmp_path / "ckpt" / "out")]


@pytest.mark.parametrize("precision, device, capability, bf16", [
    ("auto", "cpu", None, False), ("auto", "cuda", (9, 0), True), ("auto", "cuda", (8, 0), True),
    ("auto", "cuda", (7, 5), False), ("bf16", "cuda", (7, 0), True), ("bf16", "cpu", None, True),
    ("fp32", "cuda", (9, 0), False)])
def test_auto_precision_trains_in_bf16_only_on_a_gpu_that_runs_it_in_hardware(monkeypatch, precision, device,
                                                                               capability, bf16):
    monkeypatch.setattr(torch.version, "hip", None)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    config = load_config("image_text_tiny", [f"train.precision={precision}"])
    info = distributed.DistInfo(0, 1, 0, torch.device(device))
    assert trainer.use_bf16(config, info) is bf16


def test_bf16_asked_of_a_device_that_emulates_it_trains_with_a_warning(shapes, tmp_path, monkeypatch):
    from omniembed.nn import native_dtypes

    monkeypatch.setattr(native_dtypes, "runs_natively", lambda device, dtype: False)
    config = experiment(shapes, tmp_path, ["train.precision=bf16", "train.steps=2"])
    with pytest.warns(RuntimeWarning, match="train.precision=bf16: cpu has no bf16 matmul instructions"):
        trainer.train(config)
    assert len(records(tmp_path / "out")) == 2


def test_training_flushes_denormals_on_the_cpu_and_restores_them_after():
    tiny = torch.tensor([1e-40])  # a denormal float32
    with trainer.denormals_flushed(True):
        assert (tiny * 1.0).item() == 0.0
    assert (tiny * 1.0).item() != 0.0
    with trainer.denormals_flushed(False):
        assert (tiny * 1.0).item() != 0.0


def test_clipping_scales_the_gradients_down_to_the_bound_and_reports_the_norm_before():
    model = torch.nn.ModuleDict({name: torch.nn.Linear(2, 1, bias=False) for name in ("audio", "cloud")})
    model["audio"].weight.grad = torch.tensor([[30.0, 40.0]])  # norm 50
    model["cloud"].weight.grad = torch.tensor([[0.6, 0.8]])  # norm 1
    norm = trainer.clip_gradients(model, 1.0)
    assert norm.item() == pytest.approx(math.hypot(50.0, 1.0))
    assert torch.linalg.vector_norm(torch.cat([p.grad.flatten() for p in model.parameters()])).item() == \
        pytest.approx(1.0, rel=1e-5)
    assert model["cloud"].weight.grad[0].tolist() == pytest.approx([0.6 / norm.item(), 0.8 / norm.item()])


def test_without_a_bound_the_norm_is_measured_and_the_gradients_kept():
    model = torch.nn.Linear(2, 1, bias=False)
    model.weight.grad = torch.tensor([[3.0, 4.0]])
    assert trainer.clip_gradients(model, None).item() == pytest.approx(5.0)
    assert model.weight.grad[0].tolist() == [3.0, 4.0]


def test_compiled_towers_train_as_eager_ones_under_the_same_parameter_names(shapes, tmp_path):
    overrides = ["train.steps=3", "train.checkpoint_every=3", "data.num_workers=0"]
    eager = trainer.train(experiment(shapes, tmp_path / "eager", overrides))
    counters.clear()
    compiled = trainer.train(experiment(shapes, tmp_path / "compiled", overrides + ["train.compile=true"]))
    assert counters["frames"]["ok"] >= 2  # both towers' forwards went through dynamo
    a, b = load_tensors(eager / "model.safetensors"), load_tensors(compiled / "model.safetensors")
    assert a.keys() == b.keys()
    assert max((a[k] - b[k]).abs().max().item() for k in a) < 1e-4
    losses = [[r["loss"] for r in records(tmp_path / run / "out")] for run in ("eager", "compiled")]
    assert losses[1] == pytest.approx(losses[0], rel=1e-5)
