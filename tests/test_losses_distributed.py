"""Both losses across 2 gloo processes (CPU, 127.0.0.1) against one process holding the global batch of 2 × 3 pairs,
each with its partner as its only positive and with groups of pairs as positives (``groups``, across processes).

Each process projects its 3 input rows with the same two small linear towers, normalises them, takes the loss and
backpropagates; the parent compares what each process saw with one process computing the same on all 6 rows. What
is pinned is what ``omniembed.pretrain.losses`` documents: loss (each process, or its mean over processes under
``local_loss``), the features' gradients (W × the one-process gradient when gathering with grad), parameter gradients
after DDP's averaging over processes, and the mean over processes of the scale and bias gradients.
"""

from __future__ import annotations

import os
import socket
import sys
from datetime import timedelta
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

from omniembed.pretrain.losses import (
    CLIP_SCALE_INIT,
    SIGLIP_BIAS_INIT,
    SIGLIP_SCALE_INIT,
    ContrastiveLoss,
    LogitScale,
    SigLIPLoss,
)

WORLD, ROWS, IN_DIM, DIM = 2, 3, 5, 8
N = WORLD * ROWS
GROUPS = torch.tensor([0, 1, 0, 2, 1, 0])
"""The global batch's groups: each rank's rows share a group with rows of the other rank."""
CASES = [(kind, local, with_grad, grouped) for kind in ("clip", "siglip") for local in (False, True)
         for with_grad in (True, False) for grouped in (False, True)]
ZEROED = "gather-flow"
"""The extra run where only rank 0 backpropagates its loss (rank 1's is multiplied by 0)."""


def case_id(case: tuple[str, bool, bool, bool]) -> str:
    kind, local, with_grad, grouped = case
    return f"{kind}-{'local' if local else 'full'}-{'grad' if with_grad else 'nograd'}{'-groups' if grouped else ''}"


# ---- the computation every process (and the one-process reference) runs ---------------------------------------
def inputs() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Inputs x_a, x_b [6, 5] of the global batch and the two towers' projections proj_a, proj_b [5, 8]."""
    g = torch.Generator().manual_seed(0)
    x_a, x_b = (torch.randn(N, IN_DIM, generator=g, dtype=torch.float64) for _ in range(2))
    proj_a, proj_b = (torch.randn(IN_DIM, DIM, generator=g, dtype=torch.float64) for _ in range(2))
    return x_a, x_b, proj_a, proj_b


def run_case(kind: str, local: bool, with_grad: bool, grouped: bool, rows: slice, weight: float = 1.0
             ) -> dict[str, torch.Tensor]:
    """Loss, diagnostics and gradients for the input rows ``rows`` (all 6 when not distributed)."""
    x_a, x_b, proj_a, proj_b = inputs()
    groups = GROUPS[rows] if grouped else None
    proj_a, proj_b = torch.nn.Parameter(proj_a), torch.nn.Parameter(proj_b)
    a, b = F.normalize(x_a[rows] @ proj_a, dim=-1), F.normalize(x_b[rows] @ proj_b, dim=-1)
    a.retain_grad()
    b.retain_grad()
    if kind == "clip":
        scale, bias = LogitScale(init=CLIP_SCALE_INIT).double(), None
        out = ContrastiveLoss(local_loss=local, gather_with_grad=with_grad).detailed(a, b, scale(), groups)
    else:
        scale = LogitScale(init=SIGLIP_SCALE_INIT).double()
        bias = torch.nn.Parameter(torch.tensor(SIGLIP_BIAS_INIT, dtype=torch.float64))
        out = SigLIPLoss(local_loss=local, gather_with_grad=with_grad).detailed(a, b, scale(), bias, groups)
    (weight * out.loss).backward()
    result = {"loss": out.loss.detach(), "top1_ab": out.accuracy_ab, "top1_ba": out.accuracy_ba,
              "grad_a": a.grad, "grad_b": b.grad, "grad_proj_a": proj_a.grad, "grad_proj_b": proj_b.grad,
              "grad_scale": scale.log_scale.grad}
    if bias is not None:
        result["grad_bias"] = bias.grad
    return result


def local_reference_grads(kind: str, scored: slice, grouped: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """One process: gradients on all 6 rows of the loss of rows ``scored`` against all columns (a direct formula)."""
    x_a, x_b, proj_a, proj_b = inputs()
    a = F.normalize(x_a @ proj_a, dim=-1).requires_grad_(True)
    b = F.normalize(x_b @ proj_b, dim=-1).requires_grad_(True)
    same = (GROUPS[:, None] == GROUPS[None, :] if grouped else torch.eye(N, dtype=torch.bool))[scored]
    targets = same.double() / same.sum(dim=1, keepdim=True)
    s = LogitScale(init=CLIP_SCALE_INIT if kind == "clip" else SIGLIP_SCALE_INIT).double()().detach()
    if kind == "clip":
        loss = (F.cross_entropy(s * a[scored] @ b.T, targets) + F.cross_entropy(s * b[scored] @ a.T, targets)) / 2
    else:
        signs = 2 * same.double() - 1
        logits = s * a[scored] @ b.T + SIGLIP_BIAS_INIT
        loss = -F.logsigmoid(signs * logits).sum() / len(targets)
    loss.backward()
    return a.grad, b.grad


def rows_of(rank: int) -> slice:
    return slice(rank * ROWS, (rank + 1) * ROWS)


def worker(rank: int, port: int, out_dir: str) -> None:
    """One of the 2 spawned processes: every case on its own 3 rows, saved to ``out_dir/rank{rank}.pt``."""
    torch.set_num_threads(1)
    os.environ["GLOO_SOCKET_IFNAME"] = "lo0" if sys.platform == "darwin" else "lo"
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD,
                            timeout=timedelta(seconds=60))
    try:
        results = {case_id(c): run_case(*c, rows=rows_of(rank)) for c in CASES}
        results[ZEROED] = run_case("clip", True, True, False, rows=rows_of(rank), weight=1.0 if rank == 0 else 0.0)
        torch.save(results, Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ranks(tmp_path_factory) -> list[dict[str, dict[str, torch.Tensor]]]:
    """What each of the 2 processes computed, per case."""
    out = tmp_path_factory.mktemp("losses_dist")
    mp.start_processes(worker, args=(free_port(), str(out)), nprocs=WORLD, join=True, start_method="spawn")
    return [torch.load(out / f"rank{r}.pt") for r in range(WORLD)]


@pytest.fixture(scope="module")
def single() -> dict[str, dict[str, torch.Tensor]]:
    """The one-process reference on the global batch of 6, per case."""
    return {case_id(c): run_case(*c, rows=slice(None)) for c in CASES}


def close(actual: torch.Tensor, expected: torch.Tensor) -> None:
    torch.testing.assert_close(actual, expected, rtol=1e-10, atol=1e-12)


def mean(values: list[torch.Tensor]) -> torch.Tensor:
    return torch.stack(values).mean(dim=0)


# ---- the tests -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_loss_equals_one_process_loss_on_each_rank_or_as_mean_under_local_loss(ranks, single, case):
    key, local = case_id(case), case[1]
    losses = [r[key]["loss"] for r in ranks]
    close(mean(losses), single[key]["loss"])
    if not local:
        for loss in losses:
            close(loss, single[key]["loss"])
    else:  # each process's own rows differ: the per-rank values are not the global one
        assert not torch.allclose(losses[0], losses[1])


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_top1_accuracy_mean_over_ranks_equals_one_process(ranks, single, case):
    key = case_id(case)
    for name in ("top1_ab", "top1_ba"):
        close(mean([r[key][name] for r in ranks]), single[key][name])


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_feature_gradients_are_the_documented_multiple_of_one_process(ranks, single, case):
    kind, local, with_grad, grouped = case
    key = case_id(case)
    for rank, r in enumerate(ranks):
        rows = rows_of(rank)
        if with_grad:  # the gather's backward sums every process's loss gradient: W × that of the global loss
            close(r[key]["grad_a"], WORLD * single[key]["grad_a"][rows])
            close(r[key]["grad_b"], WORLD * single[key]["grad_b"][rows])
        elif not local:  # only the rank's own slot is linked: exactly the one-process gradient of the global loss
            close(r[key]["grad_a"], single[key]["grad_a"][rows])
            close(r[key]["grad_b"], single[key]["grad_b"][rows])
        else:  # only the rank's own loss reaches its rows
            grad_a, grad_b = local_reference_grads(kind, rows, grouped)
            close(r[key]["grad_a"], grad_a[rows])
            close(r[key]["grad_b"], grad_b[rows])


@pytest.mark.parametrize("case", [c for c in CASES if c[2] or not c[1]], ids=case_id)
def test_parameter_gradients_after_ddp_averaging_match_one_process(ranks, single, case):
    key, with_grad = case_id(case), case[2]
    factor = 1.0 if with_grad else 1.0 / WORLD  # without grad through the gather: as training at lr / W
    for name in ("grad_proj_a", "grad_proj_b"):
        close(mean([r[key][name] for r in ranks]), factor * single[key][name])


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_scale_and_bias_gradients_mean_over_ranks_equals_one_process(ranks, single, case):
    key = case_id(case)
    names = ["grad_scale"] + (["grad_bias"] if case[0] == "siglip" else [])
    for name in names:
        close(mean([r[key][name] for r in ranks]), single[key][name])


def test_gradient_flows_through_gather_to_the_rows_of_a_rank_whose_loss_is_zeroed(ranks):
    # only rank 0's loss is backpropagated; rank 1's rows are columns of it and get their gradient via the gather
    grad_a, grad_b = local_reference_grads("clip", rows_of(0))
    rank1 = ranks[1][ZEROED]
    assert rank1["grad_a"].abs().sum() > 0
    close(rank1["grad_a"], grad_a[rows_of(1)])
    close(rank1["grad_b"], grad_b[rows_of(1)])
    assert rank1["grad_scale"].item() == 0.0
