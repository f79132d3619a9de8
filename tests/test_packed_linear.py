"""oneDNN-packed linears in CPU inference copies: the same values as nn.Linear (+ GELU), placed where they fuse."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from omniembed.config import TransformerConfig
from omniembed.nn.packed_linear import PackedLinear, packing_available
from omniembed.nn.precision import cast_for_inference
from omniembed.nn.transformer import Transformer

needs_onednn = pytest.mark.skipif(not packing_available(torch.device("cpu"), torch.float32),
                                  reason="this PyTorch has no oneDNN")
needs_onednn_bf16 = pytest.mark.skipif(not packing_available(torch.device("cpu"), torch.bfloat16),
                                       reason="this CPU has no oneDNN bf16 path (AVX512 BW/VL/DQ or AVX-NE-CONVERT)")


@needs_onednn
@pytest.mark.parametrize("activation", ["none", "gelu"])
def test_packed_linear_matches_linear_in_fp32_for_any_leading_shape(activation):
    torch.manual_seed(0)
    linear = nn.Linear(48, 80)
    packed = PackedLinear(linear, activation=activation, rows_hint=64)
    with torch.inference_mode():
        for x in (torch.randn(3, 7, 48), torch.randn(5, 48)):  # 21 and 5 rows: not the hint
            expected = linear(x) if activation == "none" else F.gelu(linear(x))
            torch.testing.assert_close(packed(x), expected, atol=2e-6, rtol=1e-5)


@needs_onednn_bf16
def test_packed_linear_in_bf16_is_within_one_bf16_rounding_of_linear():
    torch.manual_seed(0)
    linear = nn.Linear(64, 96).to(torch.bfloat16)
    x = torch.randn(4, 9, 64, dtype=torch.bfloat16)
    with torch.inference_mode():
        out = PackedLinear(linear, activation="gelu")(x)
        expected = F.gelu(linear(x).float())
    assert out.dtype == torch.bfloat16 and out.shape == (4, 9, 96)
    torch.testing.assert_close(out.float(), expected, atol=2e-2, rtol=2e-2)  # bf16 keeps 8 bits of mantissa


@needs_onednn_bf16
def test_cast_copy_packs_block_linears_fuses_gelu_and_keeps_the_original_unpacked():
    trunk = Transformer(TransformerConfig(width=32, depth=2, heads=4, pre_norm=False)).eval()
    copy = cast_for_inference(trunk, torch.bfloat16)
    block = copy.blocks[0]
    assert isinstance(block.attn.qkv, PackedLinear) and isinstance(block.mlp.fc2, PackedLinear)
    assert block.mlp.fc1.activation == "gelu" and isinstance(block.mlp.act, nn.Identity)
    assert type(trunk.blocks[0].mlp.fc1) is nn.Linear and isinstance(trunk.blocks[0].mlp.act, nn.GELU)
    x = torch.randn(2, 6, 32)
    with torch.inference_mode():
        torch.testing.assert_close(copy(x).float(), trunk(x), atol=0.05, rtol=0.05)


def test_cast_copy_keeps_plain_bf16_linears_where_the_cpu_cannot_pack_them(monkeypatch):
    import omniembed.nn.precision as precision

    monkeypatch.setattr(precision, "packing_available", lambda device, dtype: False)
    trunk = Transformer(TransformerConfig(width=32, depth=2, heads=4, pre_norm=False)).eval()
    copy = cast_for_inference(trunk, torch.bfloat16)
    block = copy.blocks[0]
    assert type(block.attn.qkv) is nn.Linear and block.attn.qkv.weight.dtype == torch.bfloat16
    assert isinstance(block.mlp.act, nn.GELU)
    x = torch.randn(2, 6, 32)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = copy(x)
    torch.testing.assert_close(out.float(), trunk(x), atol=0.05, rtol=0.05)


def test_packed_linear_rejects_an_unknown_activation():
    with pytest.raises(ValueError, match="unknown activation 'relu'"):
        PackedLinear(nn.Linear(4, 4), activation="relu")
