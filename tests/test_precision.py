"""bf16 inference with weights cast once: close to fp32, weights not re-cast per call, copies kept in step."""

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import omniembed
from omniembed.config import TransformerConfig
from omniembed.nn.native_dtypes import runs_natively
from omniembed.nn.precision import CastCache, cast_for_inference
from omniembed.nn.transformer import Transformer

TEXTS = ["a photo of a dog", "a red car", "two birds on a wire"]


def test_cast_copy_of_an_encoder_stays_within_cosine_0_9999_of_fp32(tiny_model):
    encoder = tiny_model.encoder("image").eval()
    size = tiny_model.processor("image").config.image_size
    images = torch.randn(4, 3, size, size)
    copy = cast_for_inference(encoder, torch.bfloat16)
    with torch.inference_mode():
        fp32 = encoder(images)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            bf16 = copy(images).float()
    assert F.cosine_similarity(fp32, bf16).min() > 0.9999


def test_cast_copy_runs_blocks_in_bf16_and_shares_the_other_fp32_tensors(tiny_model):
    encoder = tiny_model.encoder("text")
    copy = cast_for_inference(encoder, torch.bfloat16)
    own = dict(encoder.named_parameters())
    dtypes = {n: p.dtype for n, p in copy.named_parameters()}
    blocks = [n for n in dtypes if ".blocks." in n]
    assert blocks and all(dtypes[n] == torch.bfloat16 for n in blocks)  # layer norms in the blocks too
    assert dtypes["head.head.proj.weight"] == torch.bfloat16  # a linear outside the blocks: weight cast
    assert dtypes["head.head.norm.weight"] == torch.float32
    for name, p in copy.named_parameters():
        if p.dtype == torch.float32:  # head norm, token and position embeddings: the original's own tensors
            assert p is own[name], name
    assert all(p.dtype == torch.float32 for p in encoder.parameters())  # the original is left as it was


def test_blocks_cast_their_fp32_input_stream_on_entry():
    trunk = Transformer(TransformerConfig(width=32, depth=2, heads=4, pre_norm=False)).eval()
    x = torch.randn(2, 5, 32)
    copy = cast_for_inference(trunk, torch.bfloat16)
    with torch.inference_mode():
        out = copy(x)  # fp32 in, as a stem hands it over; no autocast needed inside the blocks
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), trunk(x), atol=0.05, rtol=0.05)


def test_cast_cache_reuses_its_copy_until_the_weights_change():
    encoder = omniembed.create("omni-tiny", seed=0).encoder("text")
    cache = CastCache()
    first = cache.get("text", encoder, torch.bfloat16)
    assert cache.get("text", encoder, torch.bfloat16) is first
    with torch.no_grad():
        encoder.head.head.proj.weight.mul_(2.0)  # an optimiser step or load_weights writes in place
    second = cache.get("text", encoder, torch.bfloat16)
    assert second is not first
    torch.testing.assert_close(second.head.head.proj.weight, encoder.head.head.proj.weight.to(torch.bfloat16))


def test_bf16_embed_follows_weights_changed_between_calls():
    model = omniembed.create("omni-tiny", seed=0)
    before = model.embed(TEXTS, precision="bf16")
    with torch.no_grad():
        for p in model.encoder("text").trunk.parameters():
            p.add_(0.05 * torch.randn_like(p))
    after = model.embed(TEXTS, precision="bf16")
    expected = model.embed(TEXTS)  # fp32, after the change
    assert np.abs(after - before).max() > 1e-2
    np.testing.assert_allclose(np.linalg.norm(after, axis=1), 1.0, atol=1e-6)  # renormalised in fp32
    assert (after * expected).sum(axis=1).min() > 0.999


@pytest.mark.parametrize("native", [False, True])
def test_bf16_embed_warns_only_where_the_cpu_emulates_bf16(monkeypatch, native):
    from omniembed.nn import native_dtypes

    monkeypatch.setattr(native_dtypes, "runs_natively", lambda device, dtype: native)
    model = omniembed.create("omni-tiny", seed=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.embed(TEXTS, precision="bf16")
        model.embed(TEXTS)  # fp32 never warns
    emulated = [w for w in caught if issubclass(w.category, RuntimeWarning) and "emulates" in str(w.message)]
    assert len(emulated) == (0 if native else 1)
    assert all("precision='bf16'" in str(w.message) for w in emulated)


def test_a_gpu_runs_low_precision_natively_as_its_generation_says_and_a_cpu_as_oneDNN_says(monkeypatch):
    monkeypatch.setattr(torch.version, "hip", None)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (8, 6))
    assert runs_natively(torch.device("cuda", 0), torch.bfloat16)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (7, 5))  # T4: emulated bf16
    assert not runs_natively(torch.device("cuda", 0), torch.bfloat16)
    assert runs_natively(torch.device("cuda", 0), torch.float16)
    monkeypatch.setattr(torch.version, "hip", "6.4")
    assert runs_natively(torch.device("cuda", 0), torch.bfloat16)
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False, raising=False)
    assert not runs_natively(torch.device("cpu"), torch.bfloat16)
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: True, raising=False)
    assert runs_natively(torch.device("cpu"), torch.bfloat16)
