"""Every modality's encoder meets one written contract (:class:`omniembed.encoder.Encoder`), and every modality
reads training-shard bytes through one method (``Modality.prepare_bytes``): the model, ``embed`` and the trainer ask
nothing else of them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import omniembed
from omniembed import registry
from omniembed.encoder import Encoder, ModalityEncoder
from omniembed.errors import ConfigError
from omniembed.modalities.image import ImageConfig, ImageModality
from omniembed.nn.transformer import Transformer


def test_every_builtin_encoder_is_an_encoder_and_only_video_has_parts(tiny_model):
    assert set(tiny_model.modalities) == set(omniembed.list_modalities())
    for name in tiny_model.modalities:
        assert isinstance(tiny_model.encoder(name), Encoder), name
    assert tiny_model.encoder("video").part_names == ("video", "frames", "audio")
    assert [m for m in tiny_model.modalities if tiny_model.encoder(m).part_names] == ["video"]


def test_lora_targets_are_the_trunk_and_none_for_video_which_owns_no_weights(tiny_model):
    image = tiny_model.encoder("image")
    assert isinstance(image, ModalityEncoder) and image.lora_targets() == [image.trunk]
    assert tiny_model.encoder("video").lora_targets() == []
    assert list(tiny_model.encoder("video").parameters()) == []


def test_set_grad_checkpointing_reaches_our_transformers_and_timm_backbones():
    model = omniembed.create("omni-digits", seed=0)
    text, image = model.encoder("text"), model.encoder("image")
    transformers = [m for m in text.modules() if isinstance(m, Transformer)]
    assert transformers and not any(t.grad_checkpointing for t in transformers)
    text.set_grad_checkpointing(True)
    assert all(t.grad_checkpointing for t in transformers)
    timm_models = [m for m in image.modules() if hasattr(m, "grad_checkpointing") and not isinstance(m, Transformer)]
    assert timm_models and not any(m.grad_checkpointing for m in timm_models)
    image.set_grad_checkpointing(True)
    assert all(m.grad_checkpointing for m in timm_models)
    text.set_grad_checkpointing(False)
    assert not any(t.grad_checkpointing for t in transformers)


class PlainModuleModality(ImageModality):
    """A modality whose build_encoder breaks the contract: a bare nn.Module."""

    name = "test_plain_module"

    def build_encoder(self, embed_dim: int) -> nn.Module:
        return nn.Linear(3, embed_dim)


def test_a_build_encoder_that_returns_no_encoder_is_refused_naming_the_modality():
    registry.register_modality(PlainModuleModality)
    try:
        with pytest.raises(ConfigError, match="modality 'test_plain_module': build_encoder returned a Linear"):
            omniembed.create({"embed_dim": 8, "anchor": "test_plain_module",
                              "modalities": {"test_plain_module": {"image_size": 32}}})
    finally:
        del registry._MODALITIES[PlainModuleModality.name]


def test_prepare_bytes_decodes_exactly_as_prepare_reads_the_file(tmp_path: Path):
    pixels = (np.random.default_rng(0).random((40, 52, 3)) * 255).astype(np.uint8)
    path = tmp_path / "photo.png"
    Image.fromarray(pixels).save(path)
    image = ImageModality(ImageConfig(image_size=32))
    from_bytes = image.prepare_bytes(path.read_bytes(), ".png")
    assert from_bytes.shape == (3, 32, 32)
    assert torch.equal(from_bytes, image.prepare(path))


def test_heads_that_read_one_token_get_the_full_trunks_embeddings_from_a_last_block_run_there_only(
        tiny_model, tmp_path: Path):
    """CLS and EOS heads mark their token before the trunk runs; the last block then computes that token alone
    ([N, 1, D] through its MLP) and the embeddings are those of the full trunk."""
    import soundfile as sf

    rng = np.random.default_rng(0)
    photo, sound = tmp_path / "photo.png", tmp_path / "tone.wav"
    Image.fromarray((rng.random((40, 52, 3)) * 255).astype(np.uint8)).save(photo)
    sf.write(sound, (rng.standard_normal(24000) * 0.1).astype(np.float32), 16000)
    inputs = {"image": [photo, photo], "text": ["a dog", "a red car parked by the sea"], "audio": [sound]}
    for name, items in inputs.items():
        encoder, processor = tiny_model.encoder(name).eval(), tiny_model.processor(name)
        batch = processor.collate([processor.prepare(item) for item in items])
        seen = []
        last = encoder.trunk.transformer.blocks[-1]
        handle = last.mlp.register_forward_hook(lambda module, args, out: seen.append(args[0].shape[1]))
        with torch.no_grad():
            ours = encoder.features(batch)
            clips = encoder.clip_ndim is not None and batch.ndim == encoder.clip_ndim + 2  # audio: [B, K, ...]
            flat = batch.flatten(0, 1) if clips else batch
            full = encoder.head(encoder.trunk(encoder.stem(flat))).reshape(ours.shape)
        handle.remove()
        assert seen[0] == 1 and seen[1] > 1, name
        torch.testing.assert_close(ours, full, atol=1e-5, rtol=1e-4, msg=name)
