"""Contrastive losses in one process: InfoNCE and SigLIP values, logit scale (learnable, fixed, clamped), top-1."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from omniembed.errors import ConfigError
from omniembed.pretrain.losses import (
    CLIP_SCALE_INIT,
    ContrastiveLoss,
    LogitScale,
    SigLIPLoss,
    gather_rows,
)

# a·bᵀ = [[1, 0.6], [0, 0.8]]: small enough to work out by hand
A = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
B = torch.tensor([[1.0, 0.0], [0.6, 0.8]], dtype=torch.float64)


def unit_pair(n: int, dim: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    a = F.normalize(torch.randn(n, dim, generator=g, dtype=torch.float64), dim=-1)
    b = F.normalize(a + 0.8 * torch.randn(n, dim, generator=g, dtype=torch.float64), dim=-1)
    return a, b


def log1pexp(x: float) -> float:
    return math.log1p(math.exp(x))


# ---- InfoNCE ---------------------------------------------------------------------------------------------------
def test_infonce_equals_hand_computed_value_at_scale_10():
    # logits a→b [[10, 6], [0, 8]], b→a [[10, 0], [6, 8]]: each row's CE is log(1 + e^(other − own))
    expected = (log1pexp(-4) + log1pexp(-8) + log1pexp(-10) + log1pexp(-2)) / 4
    assert ContrastiveLoss()(A, B, 10.0).item() == pytest.approx(expected, rel=1e-12)


def test_infonce_matches_direct_cross_entropy_on_random_batch():
    a, b = unit_pair(5, 4)
    logits = 14.0 * a @ b.T
    labels = torch.arange(5)
    expected = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2
    torch.testing.assert_close(ContrastiveLoss()(a, b, torch.tensor(14.0, dtype=torch.float64)), expected)


def test_infonce_is_symmetric_in_its_two_inputs():
    a, b = unit_pair(4, 3)
    loss = ContrastiveLoss()
    torch.testing.assert_close(loss(a, b, 7.0), loss(b, a, 7.0))


def test_local_loss_changes_nothing_in_one_process():
    a, b = unit_pair(4, 3)
    for cls in (ContrastiveLoss, SigLIPLoss):
        torch.testing.assert_close(cls(local_loss=True, gather_with_grad=False)(a, b, 9.0), cls()(a, b, 9.0))


def test_gather_rows_is_identity_in_one_process():
    a, _ = unit_pair(3, 2)
    assert gather_rows(a) is a


# ---- logit scale -----------------------------------------------------------------------------------------------
def test_logit_scale_starts_at_clip_init_and_is_log_parameterised():
    scale = LogitScale()
    assert scale().item() == pytest.approx(1 / 0.07, rel=1e-6)
    assert CLIP_SCALE_INIT == pytest.approx(14.285714, rel=1e-6)
    assert [n for n, _ in scale.named_parameters()] == ["log_scale"]
    assert scale.log_scale.item() == pytest.approx(math.log(1 / 0.07), rel=1e-6)


def test_learnable_scale_gradient_matches_analytic_infonce_derivative():
    a, b = unit_pair(4, 3)
    scale = LogitScale(init=12.0).double()
    ContrastiveLoss()(a, b, scale()).backward()
    # dL/dlog_scale = Σ (softmax − onehot) ⊙ logits / B, averaged over both directions
    z = 12.0 * a @ b.T
    eye = torch.eye(4, dtype=torch.float64)
    expected = (((z.softmax(1) - eye) * z).sum() + ((z.T.softmax(1) - eye) * z.T).sum()) / (2 * 4)
    torch.testing.assert_close(scale.log_scale.grad, expected)


def test_fixed_scale_has_no_parameter_and_no_gradient_but_features_learn():
    scale = LogitScale(init=20.0, learnable=False)
    assert list(scale.parameters()) == []
    assert set(scale.state_dict()) == {"log_scale"}
    value = scale()
    assert not value.requires_grad
    assert value.item() == pytest.approx(20.0, rel=1e-6)
    a, b = unit_pair(4, 3)
    a.requires_grad_(True)
    loss = ContrastiveLoss()(a, b, value)
    loss.backward()
    assert a.grad is not None and a.grad.abs().sum() > 0
    torch.testing.assert_close(loss.detach(), ContrastiveLoss()(a.detach(), b, 20.0), rtol=1e-6, atol=1e-6)


def test_scale_is_clamped_at_max_where_it_gets_no_gradient():
    scale = LogitScale(init=50.0, max=100.0)
    with torch.no_grad():
        scale.log_scale.fill_(math.log(150.0))
    assert scale().item() == pytest.approx(100.0)
    a, b = unit_pair(4, 3)
    ContrastiveLoss()(a.float(), b.float(), scale()).backward()
    assert scale.log_scale.grad.item() == 0.0


@pytest.mark.parametrize("kwargs", [{"init": 0.0}, {"init": -1.0}, {"init": 200.0, "max": 100.0}])
def test_logit_scale_rejects_init_outside_zero_to_max(kwargs):
    with pytest.raises(ConfigError, match="init"):
        LogitScale(**kwargs)


# ---- SigLIP ----------------------------------------------------------------------------------------------------
def test_siglip_equals_hand_computed_value_at_scale_10_bias_minus_5():
    # logits 10·a·bᵀ − 5 = [[5, 1], [−5, 3]]; positives on the diagonal, summed and divided by B = 2
    expected = (2 * log1pexp(-5) + log1pexp(1) + log1pexp(-3)) / 2
    assert SigLIPLoss()(A, B, 10.0, -5.0).item() == pytest.approx(expected, rel=1e-12)


def test_siglip_matches_pairwise_formula_on_random_batch():
    a, b = unit_pair(5, 4, seed=1)
    scale, bias = 10.0, -10.0
    expected = 0.0
    for i in range(5):
        for j in range(5):
            z = 1.0 if i == j else -1.0
            expected -= math.log(1 / (1 + math.exp(-z * (scale * float(a[i] @ b[j]) + bias))))
    assert SigLIPLoss()(a, b, scale, bias).item() == pytest.approx(expected / 5, rel=1e-12)


def test_siglip_without_bias_equals_zero_bias():
    a, b = unit_pair(4, 3)
    torch.testing.assert_close(SigLIPLoss()(a, b, 10.0), SigLIPLoss()(a, b, 10.0, 0.0))


def test_siglip_scale_and_bias_gradients_match_analytic_derivative():
    a, b = unit_pair(4, 3, seed=2)
    scale = LogitScale(init=10.0).double()
    bias = torch.nn.Parameter(torch.tensor(-10.0, dtype=torch.float64))
    SigLIPLoss()(a, b, scale(), bias).backward()
    # d/dl −log σ(z·l) = −z·σ(−z·l)
    z = 2 * torch.eye(4, dtype=torch.float64) - 1
    sims = a @ b.T
    dl = -z * torch.sigmoid(-z * (10.0 * sims - 10.0)) / 4
    torch.testing.assert_close(bias.grad, dl.sum())
    torch.testing.assert_close(scale.log_scale.grad, (dl * 10.0 * sims).sum())


# ---- groups of pairs as positives ------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", [ContrastiveLoss, SigLIPLoss])
def test_distinct_groups_give_the_partner_only_loss_exactly(cls):
    a, b = unit_pair(6, 4)
    torch.testing.assert_close(cls()(a, b, 9.0, groups=torch.arange(6) * 7), cls()(a, b, 9.0), rtol=0, atol=0)


def test_grouped_infonce_spreads_each_rows_target_over_its_group():
    a, b = unit_pair(5, 4)
    groups = torch.tensor([3, 1, 3, 3, 1])
    same = (groups[:, None] == groups[None, :]).double()
    targets = same / same.sum(dim=1, keepdim=True)  # row 0: 1/3 on columns 0, 2, 3
    logits = 12.0 * a @ b.T
    expected = (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)) / 2
    torch.testing.assert_close(ContrastiveLoss()(a, b, 12.0, groups=groups), expected)


def test_grouped_siglip_counts_every_pair_of_a_group_as_positive():
    a, b = unit_pair(4, 3)
    groups = torch.tensor([0, 0, 5, 5])
    signs = 2 * (groups[:, None] == groups[None, :]).double() - 1
    logits = 8.0 * a @ b.T - 3.0
    expected = -F.logsigmoid(signs * logits).sum() / 4
    torch.testing.assert_close(SigLIPLoss()(a, b, 8.0, -3.0, groups=groups), expected)


def test_grouped_top1_counts_a_hit_on_any_row_of_the_group():
    # B's rows 0 and 1 swapped: no row's best match is its partner, each is its group-mate
    out = ContrastiveLoss().detailed(A, B.flip(0), 10.0, groups=torch.tensor([4, 4]))
    assert out.accuracy_ab.item() == 1.0 and out.accuracy_ba.item() == 1.0
    assert ContrastiveLoss().detailed(A, B.flip(0), 10.0).accuracy_ab.item() == 0.0


def test_one_group_for_a_whole_batch_leaves_no_gradient_to_push_rows_apart():
    # every column a positive: the target is uniform, so InfoNCE only asks for equal scores, already met by equal rows
    a = F.normalize(torch.ones(3, 2, dtype=torch.float64), dim=-1).requires_grad_(True)
    loss = ContrastiveLoss()(a, a.detach().clone(), 10.0, groups=torch.zeros(3, dtype=torch.int64))
    loss.backward()
    assert loss.item() == pytest.approx(math.log(3))
    assert a.grad.abs().max().item() < 1e-12


def test_groups_of_the_wrong_shape_raise_config_error():
    a, b = unit_pair(3, 2)
    with pytest.raises(ConfigError, match=r"groups must be \[B\] = \[3\]"):
        ContrastiveLoss()(a, b, 5.0, groups=torch.zeros(4, dtype=torch.int64))


# ---- diagnostics and errors ------------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", [ContrastiveLoss, SigLIPLoss])
def test_detailed_output_reports_top1_both_ways_and_temperature(cls):
    b = torch.tensor([[1.0, 0.0], [0.8, 0.6]], dtype=torch.float64)
    # a→b: both rows pick their partner; b→a: row 1 is closer to a[0] (0.8 > 0.6)
    out = cls().detailed(A, b, 10.0)
    assert out.accuracy_ab.item() == 1.0
    assert out.accuracy_ba.item() == 0.5
    assert out.temperature.item() == pytest.approx(0.1)
    metrics = out.metrics("image-text")
    assert set(metrics) == {"loss/image-text", "top1/image-text/a_to_b", "top1/image-text/b_to_a",
                            "logit_scale/image-text", "temperature/image-text"}
    assert not any(v.requires_grad for v in metrics.values())
    assert metrics["loss/image-text"].item() == pytest.approx(cls()(A, b, 10.0).item(), rel=1e-12)


def test_siglip_detailed_output_carries_the_bias():
    bias = torch.nn.Parameter(torch.tensor(-10.0))
    out = SigLIPLoss().detailed(A.float(), B.float(), 10.0, bias)
    assert out.loss.requires_grad
    assert out.metrics("audio")["logit_bias/audio"].item() == -10.0


@pytest.mark.parametrize("a,b", [(A, B[:1]), (A[0], B[0]), (A[:0], B[:0])])
def test_mismatched_or_empty_batches_raise_config_error(a, b):
    with pytest.raises(ConfigError, match=r"a and b must both be \[B, E\]"):
        ContrastiveLoss()(a, b, 10.0)


def test_non_scalar_or_non_positive_scale_raises_config_error():
    with pytest.raises(ConfigError, match="logit_scale must be a scalar"):
        ContrastiveLoss()(A, B, torch.ones(2))
    with pytest.raises(ConfigError, match="logit_scale must be a positive"):
        SigLIPLoss()(A, B, -1.0)
