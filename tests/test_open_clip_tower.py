"""open_clip models as frozen image/text towers: exactly open_clip's embeddings, frozen, checked preprocessing."""

import json

import pytest
import torch
from safetensors.torch import save_file

import omniembed
from omniembed.errors import CheckpointError, ConfigError
from omniembed.modalities.image import ImageConfig
from omniembed.modalities.open_clip_tower import (OpenClipConfig, build_open_clip_encoder, create_clip,
                                                  open_clip_modalities)
from omniembed.modalities.text import TextConfig

open_clip = pytest.importorskip("open_clip")
TINY = "omniembed-test-tiny-clip"
TINY_CFG = {"embed_dim": 16,
            "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "head_width": 32, "patch_size": 16},
            "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2}}
"""A two-block CLIP (ViT 32 px / 16 px patches, 32-d text) registered with open_clip, so tests build in ms."""


@pytest.fixture(scope="module")
def tiny_arch(tmp_path_factory):
    path = tmp_path_factory.mktemp("arch") / f"{TINY}.json"
    path.write_text(json.dumps(TINY_CFG))
    open_clip.add_model_config(path)
    return TINY


@pytest.fixture(scope="module")
def clip_file(tiny_arch, tmp_path_factory):
    """A random tiny CLIP saved as safetensors, and the open_clip model it came from (frozen, eval)."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = open_clip.create_model(tiny_arch).eval()
        with torch.no_grad():  # zero biases and unit norms would hide a mis-placed tensor
            for p in model.parameters():
                p.add_(torch.randn_like(p) * 0.02)
    path = tmp_path_factory.mktemp("clip") / "tiny-clip.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path, model.requires_grad_(False)


@pytest.fixture(scope="module")
def towers(clip_file, tiny_arch):
    path, _ = clip_file
    tower = OpenClipConfig(arch=tiny_arch, weights=str(path))
    return (build_open_clip_encoder("image", ImageConfig(image_size=32, tower=tower), 16),
            build_open_clip_encoder("text", TextConfig(tower=tower), 16))


def test_image_tower_returns_exactly_encode_image(clip_file, towers):
    _, model = clip_file
    image_encoder, _ = towers
    images = torch.randn(3, 3, 32, 32)
    with torch.inference_mode():
        torch.testing.assert_close(image_encoder.features(images)[:, 0], model.encode_image(images), atol=0, rtol=0)
        torch.testing.assert_close(image_encoder(images), model.encode_image(images, normalize=True),
                                   atol=1e-6, rtol=0)


def test_text_tower_returns_exactly_encode_text_even_for_trimmed_batches(clip_file, towers, tiny_arch):
    _, model = clip_file
    _, text_encoder = towers
    ids = open_clip.get_tokenizer(tiny_arch)(["a photo of a dog", "an orange cat sleeping on a red sofa", "rain"])
    used = int((ids != 0).any(dim=0).nonzero().max()) + 1  # what the text modality's collate keeps
    with torch.inference_mode():
        reference = model.encode_text(ids)
        torch.testing.assert_close(text_encoder.features(ids)[:, 0], reference, atol=0, rtol=0)
        torch.testing.assert_close(text_encoder.features(ids[:, :used])[:, 0], reference, atol=0, rtol=0)
        torch.testing.assert_close(text_encoder(ids[:, :used]), model.encode_text(ids, normalize=True),
                                   atol=1e-6, rtol=0)


def test_towers_are_frozen_and_stay_in_eval_mode(towers):
    image_encoder, text_encoder = towers
    for encoder in (image_encoder, text_encoder):
        assert not any(p.requires_grad for p in encoder.trunk.parameters())
        encoder.train()
        assert not encoder.trunk.tower.training
        assert all(not m.training for m in encoder.trunk.tower.modules())
        encoder.eval()


def test_weights_that_do_not_fit_name_the_keys(tmp_path, tiny_arch):
    save_file({"visual.conv1.weight": torch.zeros(8, 3, 32, 32)}, str(tmp_path / "wrong.safetensors"))
    with pytest.raises(CheckpointError,
                       match=rf"wrong\.safetensors: does not fit open_clip '{tiny_arch}' \(missing \[.*"
                             r"unexpected \[\].*shape mismatch \['visual\.conv1\.weight \(8, 3, 32, 32\)"):
        create_clip(OpenClipConfig(arch=tiny_arch, weights=str(tmp_path / "wrong.safetensors")))


def test_preprocessing_and_sizes_are_checked_against_the_tower(tiny_arch):
    tower = OpenClipConfig(arch="ViT-B-32")
    with pytest.raises(ConfigError, match=r"set image\.image_size = 224"):
        build_open_clip_encoder("image", ImageConfig(image_size=256, tower=tower), 512)
    tagged = OpenClipConfig(arch="ViT-B-32", pretrained="laion2b_s34b_b79k")
    with pytest.raises(ConfigError, match=r"image\.mean = \(0\.48145466"):
        build_open_clip_encoder("image", ImageConfig(mean=(0.5, 0.5, 0.5), tower=tagged), 512)
    with pytest.raises(ConfigError, match="embeds into 512 dims but the model's embed_dim is 64"):
        build_open_clip_encoder("image", ImageConfig(tower=tower), 64)
    with pytest.raises(ConfigError, match="text.context_length = 77"):
        build_open_clip_encoder("text", TextConfig(context_length=64, tower=tower), 512)
    siglip = OpenClipConfig(arch="ViT-B-16-SigLIP")
    with pytest.raises(ConfigError, match="only CLIP-BPE text towers are supported"):
        build_open_clip_encoder("text", TextConfig(tower=siglip), 768)
    with pytest.raises(ConfigError, match="open_clip has no architecture 'ViT-Q-99'"):
        build_open_clip_encoder("image", ImageConfig(tower=OpenClipConfig(arch="ViT-Q-99")), 512)
    with pytest.raises(ConfigError, match="has no pretrained tag 'nope'"):
        build_open_clip_encoder("image", ImageConfig(tower=OpenClipConfig(arch="ViT-B-32", pretrained="nope")),
                                512)
    with pytest.raises(ConfigError, match="modalities.image.timm and modalities.image.open_clip each choose"):
        omniembed.create({"embed_dim": 16, "modalities": {
            "image": {"image_size": 32, "timm": {"name": "resnet18"}, "open_clip": {"arch": tiny_arch}}}})


def test_openai_tag_switches_on_quick_gelu(tiny_arch):
    openai = create_clip(OpenClipConfig(arch="RN50", pretrained="openai"))  # the smallest arch with that tag
    plain = create_clip(OpenClipConfig(arch=tiny_arch))
    assert type(plain.visual.transformer.resblocks[0].mlp.gelu).__name__ == "GELU"
    assert type(openai.transformer.resblocks[0].mlp.gelu).__name__ == "QuickGELU"


def test_config_form_builds_a_model_whose_embed_matches_open_clip_and_survives_save_load(clip_file, tiny_arch,
                                                                                       tmp_path):
    path, model = clip_file
    tower = {"arch": tiny_arch, "weights": str(path)}
    omni = omniembed.create({"embed_dim": 16, "anchor": "image", "modalities": {
        "image": {"image_size": 32, "open_clip": tower}, "text": {"open_clip": tower},
        "depth": omniembed.config.to_dict(omniembed.registry.get_modality("depth").tiny_config())}}, seed=0)
    texts = ["a photo of a dog", "two cats"]
    expected = model.encode_text(open_clip.get_tokenizer(tiny_arch)(texts), normalize=True)
    torch.testing.assert_close(torch.from_numpy(omni.embed(texts)), expected, atol=1e-6, rtol=0)
    images = torch.rand(2, 3, 32, 32)
    torch.testing.assert_close(omni.encode_image(images), model.encode_image(images, normalize=True),
                               atol=1e-6, rtol=0)
    tower_params = [p for n, p in omni.named_parameters() if ".tower." in n]
    assert tower_params and not any(p.requires_grad for p in tower_params)
    assert any(p.requires_grad for n, p in omni.named_parameters() if n.startswith("encoders.depth."))
    omni.save(tmp_path / "ckpt")
    stored = (tmp_path / "ckpt" / "config.json").read_text()
    assert str(path) not in stored  # the tower's weights live in model.safetensors
    again = omniembed.load(tmp_path / "ckpt")
    theirs = again.state_dict()
    assert all(torch.equal(v, theirs[k]) for k, v in omni.state_dict().items())
    torch.testing.assert_close(torch.from_numpy(again.embed(texts)), expected, atol=1e-6, rtol=0)


def test_open_clip_modalities_writes_a_consistent_pair(tiny_arch):
    pair = open_clip_modalities("MobileCLIP-S1", pretrained="datacompdr")
    image = pair["image"]
    assert (image.image_size, image.interpolation, image.mean) == (256, "bilinear", (0.0, 0.0, 0.0))
    assert pair["text"].tower == image.tower and pair["text"].context_length == 77
    with pytest.raises(ConfigError, match="resizes with mode 'squash'"):
        open_clip_modalities("ViT-B-16-SigLIP", pretrained="webli")
    tiny = open_clip_modalities(tiny_arch)
    assert tiny["image"].image_size == 32
    encoder = build_open_clip_encoder("image", tiny["image"], 16)
    assert encoder(torch.rand(1, 3, 32, 32)).shape == (1, 16)
