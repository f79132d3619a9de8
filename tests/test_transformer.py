"""The trunk's attention: SDPA equals the textbook formula, causal and bias-kv masking are right (a mask given to a
causal trunk joins the causal rule); computed at one row per sample (for a head that reads one token) it gives the
full outputs there."""

import math

import pytest
import torch

from omniembed.config import TransformerConfig
from omniembed.nn import transformer
from omniembed.nn.transformer import Attention, Transformer


def reference_attention(attn: Attention, x: torch.Tensor, causal: bool) -> torch.Tensor:
    b, n, d = x.shape
    q, k, v = attn.qkv(x).chunk(3, dim=-1)
    if attn.bias_k is not None:
        k = torch.cat([k, attn.bias_k.expand(b, 1, d)], 1)
        v = torch.cat([v, attn.bias_v.expand(b, 1, d)], 1)
    h = attn.heads
    q, k, v = (t.reshape(b, -1, h, d // h).transpose(1, 2) for t in (q, k, v))
    scores = q @ k.transpose(-1, -2) / math.sqrt(d // h)
    if causal:
        allowed = torch.ones(n, k.shape[2], dtype=torch.bool).tril()
        if attn.bias_k is not None:
            allowed[:, -1] = True
        scores = scores.masked_fill(~allowed, float("-inf"))
    out = scores.softmax(-1) @ v
    return attn.proj(out.transpose(1, 2).reshape(b, n, d))


def test_attention_matches_the_textbook_formula():
    for bias_kv in (False, True):
        for causal in (False, True):
            attn = Attention(32, 4, bias_kv=bias_kv)
            x = torch.randn(3, 7, 32)
            torch.testing.assert_close(attn(x, causal=causal), reference_attention(attn, x, causal), atol=1e-5, rtol=1e-5)


def test_causal_trunk_ignores_future_tokens():
    trunk = Transformer(TransformerConfig(width=32, depth=2, heads=4, causal=True)).eval()
    x = torch.randn(2, 9, 32)
    y = x.clone()
    y[:, 5:] = torch.randn(2, 4, 32)
    torch.testing.assert_close(trunk(x)[:, :5], trunk(y)[:, :5])


def test_gradient_checkpointing_gives_the_same_gradients():
    torch.manual_seed(0)
    plain = Transformer(TransformerConfig(width=32, depth=2, heads=4))
    ckpt = Transformer(TransformerConfig(width=32, depth=2, heads=4, grad_checkpointing=True))
    ckpt.load_state_dict(plain.state_dict())
    x = torch.randn(2, 5, 32)
    plain(x).square().sum().backward()
    ckpt(x).square().sum().backward()
    for (name, a), (_, b) in zip(plain.named_parameters(), ckpt.named_parameters()):
        torch.testing.assert_close(a.grad, b.grad, msg=name)


def test_drop_path_is_identity_in_eval_and_random_in_train():
    trunk = Transformer(TransformerConfig(width=16, depth=4, heads=2, drop_path=0.5))
    x = torch.randn(8, 3, 16)
    trunk.eval()
    torch.testing.assert_close(trunk(x), trunk(x))
    trunk.train()
    assert not torch.allclose(trunk(x), trunk(x))


def test_drop_path_rises_linearly_over_the_blocks_and_the_trunk_builds_on_the_meta_device():
    rates = [b.drop_path.p for b in Transformer(TransformerConfig(width=16, depth=5, heads=2, drop_path=0.2)).blocks]
    assert rates == pytest.approx([0.0, 0.05, 0.1, 0.15, 0.2])
    assert [b.drop_path.p for b in Transformer(TransformerConfig(width=16, depth=1, heads=2, drop_path=0.2)).blocks] \
        == [0.0]
    with torch.device("meta"):  # shapes only, no memory: how a large model is built before sharding
        trunk = Transformer(TransformerConfig(width=16, depth=3, heads=2, drop_path=0.1))
    assert {p.device.type for p in trunk.parameters()} == {"meta"}



def _attention_and_gradients(attn, x: torch.Tensor, mask, causal: bool, parameters=None):
    """[output, input gradient, parameter gradients…] of ``attn(x, mask, causal)`` (an Attention or a function of
    those arguments over ``parameters``), all fp32."""
    parameters = list(attn.parameters() if parameters is None else parameters)
    xi = x.clone().requires_grad_()
    out = attn(xi, mask, causal)
    out.float().square().sum().backward()
    grads = [p.grad.float().clone() for p in parameters]
    for p in parameters:
        p.grad = None
    return [out.float(), xi.grad.float(), *grads]


@pytest.mark.parametrize("bias_kv,causal", [(False, True), (True, True), (False, False)])
def test_bf16_cpu_training_attention_gives_sdpa_outputs_and_gradients(monkeypatch, bias_kv, causal):
    """Training in bf16 on a CPU scores attention with explicit matmuls (faster there than the flash kernel's
    backward); values and gradients are those of scaled_dot_product_attention up to bf16 rounding."""
    torch.manual_seed(0)
    attn = Attention(32, 4, bias_kv=bias_kv).to(torch.bfloat16)
    x = torch.randn(3, 9, 32, dtype=torch.bfloat16)
    mask = None
    if not causal:  # a key-padding mask (True attends), the first key always visible
        mask = torch.rand(3, 1, 1, 9) > 0.2
        mask[..., 0] = True
    taken = []
    real = transformer._matmul_attention
    monkeypatch.setattr(transformer, "_matmul_attention", lambda *a: taken.append(True) or real(*a))
    ours = _attention_and_gradients(attn, x, mask, causal)
    assert taken, "the bf16 CPU training path did not take the matmul attention"
    monkeypatch.setattr(transformer, "_matmul_attention_pays", lambda q: False)
    reference = _attention_and_gradients(attn, x, mask, causal)
    for got, expected in zip(ours, reference):
        scale = expected.abs().max().item()
        assert (got - expected).abs().max().item() <= 0.02 * scale


def _masks(b: int, n: int) -> dict:
    """Masks of every broadcastable shape the trunk takes: key padding, additive [L, L'], per-sample boolean."""
    torch.manual_seed(1)
    padding = torch.rand(b, 1, 1, n) > 0.3
    padding[..., 0] = True
    per_sample = torch.rand(b, 1, n, n) > 0.3
    per_sample[..., 0] = True
    return {"none": None, "key padding": padding, "additive": torch.randn(n, n), "per sample": per_sample}


@pytest.mark.parametrize("bias_kv", [False, True])
@pytest.mark.parametrize("mask_kind", ["key padding", "additive", "per sample"])
def test_causal_attention_given_a_mask_keeps_both_rules(bias_kv, mask_kind):
    """A mask does not switch causality off: the outputs are those of the mask joined with the causal one, and
    changing later tokens leaves earlier outputs alone."""
    torch.manual_seed(0)
    attn = Attention(32, 4, bias_kv=bias_kv)
    x = torch.randn(3, 7, 32)
    mask = _masks(3, 7)[mask_kind]
    causal = torch.ones(7, 7, dtype=torch.bool).tril()
    joined = mask & causal if mask.dtype == torch.bool else torch.where(causal, mask, float("-inf"))
    torch.testing.assert_close(attn(x, mask, True), attn(x, joined, False))
    later = x.clone()
    later[:, 4:] = torch.randn(3, 3, 32)
    torch.testing.assert_close(attn(later, mask, True)[:, :4], attn(x, mask, True)[:, :4])


@pytest.mark.parametrize("mask_kind", ["none", "key padding", "additive", "per sample"])
@pytest.mark.parametrize("bias_kv,causal", [(False, False), (False, True), (True, False), (True, True)])
def test_attention_at_one_row_per_sample_equals_the_full_outputs_there(bias_kv, causal, mask_kind):
    torch.manual_seed(0)
    attn = Attention(32, 4, bias_kv=bias_kv)
    x = torch.randn(3, 7, 32)
    mask = _masks(3, 7)[mask_kind]
    rows = torch.tensor([0, 6, 3])
    full = attn(x, mask, causal)[torch.arange(3), rows].unsqueeze(1)
    torch.testing.assert_close(attn(x, mask, causal, rows), full, atol=1e-6, rtol=1e-5)


def test_attention_at_rows_projects_through_a_layer_that_is_not_a_plain_linear():
    """A LoRA-adapted (or packed) qkv is called whole; its outputs at the rows are the same."""
    from omniembed.pretrain.lora import add_lora

    torch.manual_seed(0)
    attn = Attention(32, 4)
    x, rows = torch.randn(2, 5, 32), torch.tensor([4, 1])
    add_lora(attn, rank=2, alpha=4.0)
    torch.nn.init.normal_(attn.qkv.lora_b)
    assert type(attn.qkv) is not torch.nn.Linear
    full = attn(x, None, True)[torch.arange(2), rows].unsqueeze(1)
    torch.testing.assert_close(attn(x, None, True, rows), full)


@pytest.mark.parametrize("causal", [False, True])
def test_bf16_cpu_training_attention_at_rows_gives_the_full_outputs_and_gradients_there(causal):
    torch.manual_seed(0)
    attn = Attention(32, 4).to(torch.bfloat16)
    x = torch.randn(3, 9, 32, dtype=torch.bfloat16)
    rows = torch.tensor([8, 0, 5])
    picked = lambda out: out[torch.arange(3), rows].unsqueeze(1)  # noqa: E731
    ours = _attention_and_gradients(lambda xi, mask, causal: attn(xi, mask, causal, rows), x, None, causal,
                                    attn.parameters())
    reference = _attention_and_gradients(lambda xi, mask, causal: picked(attn(xi, mask, causal)), x, None, causal,
                                         attn.parameters())
    for got, expected in zip(ours, reference):
        assert (got - expected).abs().max().item() <= 0.02 * expected.abs().max().item()


@pytest.mark.parametrize("checkpointing", [False, True])
def test_trunk_at_rows_runs_its_last_block_there_only_with_the_full_outputs_and_gradients(checkpointing):
    torch.manual_seed(0)
    config = TransformerConfig(width=32, depth=3, heads=4, causal=True, grad_checkpointing=checkpointing)
    trunk = Transformer(config).train()
    x, rows = torch.randn(4, 6, 32), torch.tensor([5, 2, 0, 3])
    seen = []
    trunk.blocks[-1].mlp.register_forward_hook(lambda module, args, out: seen.append(tuple(args[0].shape)))
    ours = trunk(x, rows=rows)
    assert ours.shape == (4, 1, 32) and seen[0] == (4, 1, 32)
    ours.square().sum().backward()
    ours_grads = [p.grad.clone() for p in trunk.parameters()]
    trunk.zero_grad()
    full = trunk(x)[torch.arange(4), rows].unsqueeze(1)
    full.square().sum().backward()
    torch.testing.assert_close(ours, full, atol=1e-6, rtol=1e-5)
    for got, (name, p) in zip(ours_grads, trunk.named_parameters()):
        torch.testing.assert_close(got, p.grad, atol=1e-5, rtol=1e-4, msg=name)
