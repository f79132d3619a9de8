"""Exact gradient accumulation for contrastive losses (``train.accum_steps``): k micro-batches give the loss and
gradients of one batch of k× the size — alone, across 2 gloo processes with every gather / local-loss option,
and through the trainer."""

from __future__ import annotations

import contextlib
import socket
import sys
from datetime import timedelta
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch import nn

from omniembed.io import load_tensors
from omniembed.pretrain import trainer
from omniembed.pretrain.accumulation import backward_step
from omniembed.pretrain.config import ExperimentConfig
from omniembed.pretrain.pair_plan import PairPlan, PlannedPair

sys.path.insert(0, str(Path(__file__).parent))
from test_trainer import experiment, records  # noqa: E402
from test_trainer import shapes  # noqa: E402,F401  (fixture)

ROWS, IN_DIM, DIM = 8, 6, 5
NO_AUTOCAST = contextlib.nullcontext()


class Tower(nn.Module):
    """x [b, IN_DIM] → unit vectors [b, DIM]; optional dropout / batch norm; a learnable logit scale."""

    def __init__(self, dropout: float = 0.0, batch_norm: bool = False):
        super().__init__()
        self.proj = nn.Linear(IN_DIM, DIM)
        self.norm = nn.BatchNorm1d(DIM) if batch_norm else nn.Identity()
        self.drop = nn.Dropout(dropout)
        self.log_scale = nn.Parameter(torch.tensor(2.5))  # used when the tower is a pair's ``other`` side

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.drop(self.norm(self.proj(x))), dim=-1)


class Towers(nn.Module):
    def __init__(self, encoders: dict[str, nn.Module]):
        super().__init__()
        self.encoders = nn.ModuleDict(encoders)


class PairModule(nn.Module):
    """The shape of trainer.TrainingModule: inputs → (embeddings, {other: scale}, {"a-b": bias})."""

    def __init__(self, seed: int = 0, dropout: float = 0.0, batch_norm: bool = False, frozen_text: bool = False,
                 with_bias: bool = False):
        super().__init__()
        torch.manual_seed(seed)
        self.model = Towers({"image": Tower(dropout, batch_norm), "text": Tower(dropout)})
        # as the trainer: a bias only for the sigmoid loss (DDP would wait forever for an unused one's gradient)
        self.logit_bias = nn.Parameter(torch.tensor(-1.0)) if with_bias else None
        if frozen_text:
            self.model.encoders["text"].requires_grad_(False)

    def forward(self, inputs, pairs):
        embeddings = {m: self.model.encoders[m](x) for m, x in inputs.items()}
        scales = {p.scale: self.model.encoders[p.scale].log_scale.exp() for p in pairs}
        biases = {p.name: self.logit_bias for p in pairs} if self.logit_bias is not None else {}
        return embeddings, scales, biases


def objective(kind: str = "clip", local: bool = True, with_grad: bool = True) -> trainer.PairObjective:
    config = ExperimentConfig.from_dict({
        "data": {"batch_size": ROWS, "streams": 1,
                 "datasets": [{"name": "pairs", "shards": ["x.tar"], "pairs": [["image", "text"]]}]},
        "loss": {"kind": kind, "local_loss": local, "gather_with_grad": with_grad}})
    return trainer.PairObjective(config, PairPlan.from_config(config))


def batch(rows: slice = slice(None)) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return {m: torch.randn(2 * ROWS, IN_DIM, generator=g, dtype=torch.float64)[rows] for m in ("image", "text")}


def micro(inputs: dict[str, torch.Tensor], k: int) -> list[dict[str, torch.Tensor]]:
    n = len(inputs["image"]) // k
    return [{m: x[i * n:(i + 1) * n] for m, x in inputs.items()} for i in range(k)]


def grads(module: nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.grad.clone() for n, p in module.named_parameters() if p.grad is not None}


def step(module: nn.Module, goal, micro_batches) -> tuple[float, dict[str, torch.Tensor]]:
    module.zero_grad(set_to_none=True)
    metrics = backward_step(module, goal, micro_batches, 0, NO_AUTOCAST)
    return float(metrics["loss"]), grads(module)


def assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], atol: float = 1e-5) -> None:
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], atol=atol, rtol=0, msg=name)


@pytest.mark.parametrize("kind", ["clip", "siglip"])
@pytest.mark.parametrize("k", [2, 4, 8])
def test_k_micro_batches_give_the_loss_and_gradients_of_the_whole_batch(kind, k):
    inputs = batch(slice(0, ROWS))
    goal = objective(kind)
    siglip = kind == "siglip"
    whole_loss, whole = step(PairModule(with_bias=siglip).double(), goal, [inputs])
    loss, accumulated = step(PairModule(with_bias=siglip).double(), goal, micro(inputs, k))
    assert loss == pytest.approx(whole_loss, abs=1e-5)
    assert_same(accumulated, whole)
    assert "model.encoders.text.log_scale" in whole and ("logit_bias" in whole) == siglip


def test_summing_micro_batch_losses_is_not_the_whole_batch_loss():
    """Why accumulation must cache: each micro-batch alone meets fewer negatives."""
    inputs, goal = batch(slice(0, ROWS)), objective()
    whole_loss, _ = step(PairModule().double(), goal, [inputs])
    alone = [step(PairModule().double(), goal, [part])[0] for part in micro(inputs, 4)]
    assert sum(alone) / 4 < whole_loss - 0.1


def test_frozen_tower_is_run_once_and_gets_no_gradient():
    calls = []
    module = PairModule(frozen_text=True).double()
    module.model.encoders["text"].register_forward_hook(lambda *_: calls.append(1))
    module.model.encoders["image"].log_scale.requires_grad_(True)
    inputs = batch(slice(0, ROWS))
    _, whole = step(PairModule(frozen_text=True).double(), objective(), [inputs])
    _, accumulated = step(module, objective(), micro(inputs, 4))
    assert len(calls) == 4  # the caching pass only
    assert_same(accumulated, whole)
    assert not any(name.startswith("model.encoders.text") for name in accumulated)


def test_recompute_replays_the_dropout_draws_of_the_caching_pass():
    """With dropout, accumulation equals one graph over the micro-batches' forwards drawn in the same order."""
    inputs, goal, k = batch(slice(0, ROWS)), objective(), 4
    module = PairModule(dropout=0.5).double()
    torch.manual_seed(7)
    _, accumulated = step(module, goal, micro(inputs, k))
    after = torch.rand(1)
    reference = PairModule(dropout=0.5).double()
    torch.manual_seed(7)
    outs = [reference(part, goal.pairs_of(0)) for part in micro(inputs, k)]
    embeddings = {m: torch.cat([o[0][m] for o in outs]) for m in ("image", "text")}
    loss, _ = goal(0, embeddings, outs[-1][1], outs[-1][2])
    loss.backward()
    assert_same(accumulated, grads(reference))
    # the random stream goes on from where the caching pass left it
    torch.manual_seed(7)
    for part in micro(inputs, k):
        reference(part, goal.pairs_of(0))
    assert torch.equal(after, torch.rand(1))


def test_batch_norm_statistics_are_updated_once_per_micro_batch():
    inputs, k = batch(slice(0, ROWS)), 4
    module = PairModule(batch_norm=True).double()
    step(module, objective(), micro(inputs, k))
    reference = PairModule(batch_norm=True).double()
    with torch.no_grad():
        for part in micro(inputs, k):
            reference(part, [PlannedPair("image", "text")])
    norm, expected = module.model.encoders["image"].norm, reference.model.encoders["image"].norm
    assert int(norm.num_batches_tracked) == k
    torch.testing.assert_close(norm.running_mean, expected.running_mean, atol=1e-12, rtol=0)
    torch.testing.assert_close(norm.running_var, expected.running_var, atol=1e-12, rtol=0)


# ---- 2 processes (gloo), DDP, every gather / local-loss option ----------------------------------------------------
WORLD, K = 2, 2
CASES = [(kind, local, with_grad) for kind in ("clip", "siglip") for local in (False, True)
         for with_grad in (True, False)]


def _worker(rank: int, port: int, out_dir: str) -> None:
    """One of the 2 spawned processes: every case unsplit and in K micro-batches, saved to ``rank{rank}.pt``."""
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD,
                            timeout=timedelta(seconds=60))
    try:
        rows = slice(rank * ROWS, (rank + 1) * ROWS)
        out = {}
        for case in CASES:
            goal = objective(*case)
            for k in (1, K):
                inner = PairModule(with_bias=case[0] == "siglip").double()
                # the image tower's own logit scale is no pair's temperature: frozen, as the trainer does
                inner.model.encoders["image"].log_scale.requires_grad_(False)
                module = nn.parallel.DistributedDataParallel(inner)
                loss, grad = step(module, goal, micro(batch(rows), k))
                out[case, k] = (loss, {n.removeprefix("module."): g for n, g in grad.items()})
        torch.save(out, Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory) -> dict[int, dict]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path_factory.mktemp("accum_dist")
    mp.start_processes(_worker, args=(port, str(out)), nprocs=WORLD, join=True, start_method="spawn")
    return {r: torch.load(out / f"rank{r}.pt") for r in range(WORLD)}


@pytest.mark.slow  # starts 2 processes
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}-{'local' if c[1] else 'full'}-"
                                                     f"{'grad' if c[2] else 'nograd'}")
def test_accumulation_across_processes_equals_the_unsplit_distributed_step(two_processes, case):
    for rank in range(WORLD):
        loss, accumulated = two_processes[rank][case, K]
        whole_loss, whole = two_processes[rank][case, 1]
        assert loss == pytest.approx(whole_loss, abs=1e-5)
        assert_same(accumulated, whole)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["clip", "siglip"])
@pytest.mark.parametrize("local", [False, True])
def test_accumulation_across_processes_equals_one_process_with_the_global_batch(two_processes, kind, local):
    """Gathering with grad, DDP-averaged gradients equal one process's gradient of the global batch."""
    reference = PairModule(with_bias=kind == "siglip").double()
    reference.model.encoders["image"].log_scale.requires_grad_(False)
    whole_loss, single = step(reference, objective(kind, local, True), [batch()])
    losses = [two_processes[r][(kind, local, True), K][0] for r in range(WORLD)]
    assert sum(losses) / WORLD == pytest.approx(whole_loss, abs=1e-5)
    assert_same(two_processes[0][(kind, local, True), K][1], single)


# ---- through the trainer ------------------------------------------------------------------------------------------
def test_trainer_with_accum_steps_matches_the_unsplit_run(shapes, tmp_path):  # noqa: F811
    plain = experiment(shapes, tmp_path / "plain", ["train.steps=3"])
    split = experiment(shapes, tmp_path / "split", ["train.steps=3", "train.accum_steps=4"])
    trainer.train(plain)
    trainer.train(split)
    a, b = records(tmp_path / "plain" / "out"), records(tmp_path / "split" / "out")
    assert [r["step"] for r in a] == [r["step"] for r in b] == [1, 2, 3]
    for x, y in zip(a, b):
        assert y["loss"] == pytest.approx(x["loss"], abs=1e-5)
        # relative: micro-batches run matmuls of other shapes, which round otherwise in fp32 — ~1e-6 of the norm
        assert y["grad_norm"] == pytest.approx(x["grad_norm"], rel=1e-5)
    wa = load_tensors(tmp_path / "plain" / "out" / "model" / "model.safetensors")
    wb = load_tensors(tmp_path / "split" / "out" / "model" / "model.safetensors")
    assert max((wa[n] - wb[n]).abs().max().item() for n in wa) < 1e-4


def test_accum_steps_that_do_not_divide_the_batch_are_refused(shapes, tmp_path):  # noqa: F811
    from omniembed.errors import ConfigError

    with pytest.raises(ConfigError, match="accum_steps=3"):
        trainer.train(experiment(shapes, tmp_path / "bad", ["train.steps=1", "train.accum_steps=3"]))
