"""Acceptance on CPU: ``torchrun --nproc_per_node 2`` (gloo) on tiny image–caption shards holding truncated PNGs.

One uninterrupted 2-process DDP run of 30 steps (global batch 8 = 2 processes × 4) is the reference for: equality
with the 1-process run of batch 8, loss falling, corrupt samples skipped, FSDP2 (eager or compiled) giving the same
run, and a run SIGKILLed after its step-10 checkpoint and resumed reaching bit-identical final weights.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from omniembed.io import load_tensors
from omniembed.pretrain import trainer
from omniembed.pretrain.config import load_config
from omniembed.pretrain.pair_plan import PairPlan
from omniembed.pretrain.parallel import needs_unused_search

from test_shards import make_pair_shards
from test_trainer import mixture, records, tiny_experiment, write_experiment

pytestmark = pytest.mark.slow

HOOK = '''
import os, time
from pathlib import Path

def block(model, step):
    """An evaluation that never ends: the test SIGKILLs the run while it sits here."""
    Path(os.environ["BLOCK_MARKER"] + "." + os.environ["RANK"]).write_text(str(os.getpid()))
    time.sleep(600)
'''


def torchrun(config: Path, *overrides: str, env: dict | None = None, **popen) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone",
           "-m", "omniembed.pretrain.trainer", str(config), *overrides]
    return subprocess.Popen(cmd, env={**os.environ, **(env or {})}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, **popen)


def finish(proc: subprocess.Popen, timeout: float = 240) -> str:
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out[-4000:]
    return out


def weights(out_dir: Path) -> dict[str, torch.Tensor]:
    return load_tensors(out_dir / "model" / "model.safetensors")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """The shards, the experiment file and the finished reference run (2 processes, DDP)."""
    root = tmp_path_factory.mktemp("dist")
    index = make_pair_shards(root, n=32, corrupt=2)
    config = write_experiment(root / "exp.yaml", tiny_experiment(index, root / "reference", steps=30))
    finish(torchrun(config))
    return root, config


def test_two_processes_equal_one_process_with_the_doubled_batch(run):
    root, config = run
    trainer.train(load_config(config, [f"train.out_dir={root / 'single'}"]))
    two = [r["loss"] for r in records(root / "reference")]
    one = [r["loss"] for r in records(root / "single")]
    assert len(two) == len(one) == 30
    assert one[0] == pytest.approx(two[0], abs=1e-6)
    assert max(abs(a - b) for a, b in zip(one, two)) < 2e-5  # float summation order only
    a, b = weights(root / "single"), weights(root / "reference")
    assert max((a[k] - b[k]).abs().max().item() for k in a) < 1e-4


def test_loss_falls(run):
    losses = [r["loss"] for r in records(run[0] / "reference")]
    assert sum(losses[-5:]) / 5 < 0.6 * sum(losses[:5]) / 5


def test_truncated_pngs_are_counted_and_skipped_without_stopping(run):
    rows = records(run[0] / "reference")
    assert rows[-1]["step"] == 30
    assert rows[-1]["data/corrupt"] > 0
    assert rows[-1]["data/read"] >= 30 * 8 + rows[-1]["data/corrupt"]


def test_fsdp2_run_equals_the_ddp_run(run):
    root, config = run
    finish(torchrun(config, "train.parallel=fsdp", f"train.out_dir={root / 'fsdp'}"))
    fsdp = [r["loss"] for r in records(root / "fsdp")]
    ddp = [r["loss"] for r in records(root / "reference")]
    assert len(fsdp) == 30 and max(abs(a - b) for a, b in zip(fsdp, ddp)) < 1e-5
    a, b = weights(root / "fsdp"), weights(root / "reference")
    assert max((a[k] - b[k]).abs().max().item() for k in a) < 1e-5


def test_compiled_fsdp2_run_equals_the_eager_ddp_run(run):
    """``train.compile`` under FSDP2: dynamo traces through ``fully_shard``'s hooks and the compiled backward still
    reduces every gradient."""
    root, config = run
    finish(torchrun(config, "train.parallel=fsdp", "train.compile=true", f"train.out_dir={root / 'compiled'}"))
    compiled = [r["loss"] for r in records(root / "compiled")]
    ddp = [r["loss"] for r in records(root / "reference")]
    assert len(compiled) == 30 and max(abs(a - b) for a, b in zip(compiled, ddp)) < 1e-5
    a, b = weights(root / "compiled"), weights(root / "reference")
    assert a.keys() == b.keys() and max((a[k] - b[k]).abs().max().item() for k in a) < 1e-4


def test_killed_run_resumes_to_bit_identical_weights(run):
    root, config = run
    out = root / "killed"
    (root / "blockhook.py").write_text(HOOK)
    marker = root / "blocked"
    env = {"PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]), "BLOCK_MARKER": str(marker)}
    proc = torchrun(config, f"train.out_dir={out}", "train.eval_every=15", "train.eval_hook=blockhook:block",
                    env=env)
    deadline = time.monotonic() + 240
    while not all(Path(f"{marker}.{r}").exists() for r in (0, 1)):
        assert proc.poll() is None, proc.communicate()[0][-4000:]
        assert time.monotonic() < deadline, "the run never reached its step-15 evaluation"
        time.sleep(0.1)
    # torchrun puts each worker in a session of its own: SIGKILL the agent and every worker, as a node failure would
    for pid in [proc.pid] + [int(Path(f"{marker}.{r}").read_text()) for r in (0, 1)]:
        os.kill(pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    assert (out / "checkpoints" / "latest.json").is_file()
    assert sorted(p.name for p in (out / "checkpoints").glob("step_*")) == ["step_00000010"]
    assert records(out)[-1]["step"] == 15  # it had gone on past the checkpoint

    resumed = subprocess.run([sys.executable, "-m", "omniembed.commands.train", str(config), "--nproc", "2",
                              "--resume", f"train.out_dir={out}"], capture_output=True, text=True, timeout=240)
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-4000:]
    a, b = weights(out), weights(root / "reference")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)  # bit-identical
    assert [r["loss"] for r in records(out)] == [r["loss"] for r in records(root / "reference")]


def test_mixture_with_loader_workers_and_bf16_runs_under_ddp(run):
    """Steps of the captions dataset leave the (learning) image logit scale without gradient: DDP must be told to
    look for unused parameters, or it fails on the step after."""
    root, _ = run
    exp = tiny_experiment(root / "shards" / "shards.json", root / "mixed", steps=8)
    exp["data"].update(datasets=mixture(root / "shards" / "shards.json"), num_workers=1)
    exp["train"].update(precision="bf16")
    config = write_experiment(root / "mixed.yaml", exp)
    experiment = load_config(config)
    plan = PairPlan.from_config(experiment)
    module = trainer.TrainingModule(trainer.build_model(experiment, plan), experiment, plan)
    trainer.configure_trainable(module.model, experiment, plan)
    assert needs_unused_search(module, plan)
    finish(torchrun(config))
    rows = records(root / "mixed")
    assert [r["step"] for r in rows] == list(range(1, 9))
    assert {r["dataset"] for r in rows} == {"captions", "both_ways"}
    assert all(r["loss"] == r["loss"] for r in rows)  # finite, not NaN


@pytest.mark.parametrize("parallel", ["ddp", "fsdp"])
def test_accumulated_micro_batches_equal_the_unsplit_run(run, parallel):
    """train.accum_steps=2 under DDP (no_sync) and FSDP2 (set_requires_gradient_sync): the reference run's losses."""
    root, config = run
    out = root / f"accum-{parallel}"
    finish(torchrun(config, f"train.parallel={parallel}", "train.accum_steps=2", f"train.out_dir={out}"))
    split = [r["loss"] for r in records(out)]
    whole = [r["loss"] for r in records(root / "reference")]
    assert len(split) == 30 and max(abs(a - b) for a, b in zip(split, whole)) < 1e-5
    a, b = weights(out), weights(root / "reference")
    assert max((a[k] - b[k]).abs().max().item() for k in a) < 1e-4
