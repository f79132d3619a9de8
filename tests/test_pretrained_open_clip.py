"""``open_clip:ARCH/TAG``: open_clip's own pretrained table and download code (a table entry pointed at a tiny CLIP
served from 127.0.0.1), frozen image and text towers that return open_clip's embeddings, ``add=[...]`` towers."""

import json

import pytest
import torch

import omniembed
from omniembed.modalities.pointcloud import PointCloudConfig
from omniembed.pretrained.errors import OfflineError
from omniembed.registry import get_modality

from local_server import LocalFileServer, closed_port_url
from test_open_clip_tower import TINY_CFG  # a two-block CLIP, registered here under its own name

open_clip = pytest.importorskip("open_clip")
ARCH = "omniembed-test-pretrained-clip"
TAG = "local_test"


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """(served directory, the open_clip model whose state dict it holds as tiny-clip.bin)."""
    cfg = tmp_path_factory.mktemp("arch") / f"{ARCH}.json"
    cfg.write_text(json.dumps(TINY_CFG))
    open_clip.add_model_config(cfg)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = open_clip.create_model(ARCH).eval()
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p) * 0.02)
            model.logit_scale.fill_(4.0)  # a trained-looking temperature, e^4 ≈ 55, not the init 1/0.07
    root = tmp_path_factory.mktemp("www")
    torch.save(model.state_dict(), root / "tiny-clip.bin")
    return root, model.requires_grad_(False)


@pytest.fixture
def tagged(clip, tmp_path, monkeypatch):
    """open_clip's pretrained table gains ARCH/TAG, downloaded from the local server; the cache is in tmp."""
    root, model = clip
    monkeypatch.setenv("OMNIEMBED_CACHE", str(tmp_path / "cache"))
    with LocalFileServer(root) as server:
        monkeypatch.setitem(open_clip.pretrained._PRETRAINED, ARCH,
                            {TAG: open_clip.pretrained._pcfg(url=server.url("tiny-clip.bin"))})
        yield server, model


def test_open_clip_spec_downloads_with_open_clip_and_returns_its_embeddings(tagged, tmp_path):
    server, reference = tagged
    model = omniembed.load(f"open_clip:{ARCH}/{TAG}")
    assert server.requests == [("tiny-clip.bin", None)]
    assert (tmp_path / "cache" / "open_clip" / "tiny-clip.bin").is_file()
    assert model.modalities == ["image", "text"] and model.embed_dim == 16
    images = torch.randn(2, 3, 32, 32)
    ids = open_clip.get_tokenizer(ARCH)(["a photo of a dog", "rain"])
    with torch.inference_mode():
        torch.testing.assert_close(model.encode_image(images), reference.encode_image(images, normalize=True),
                                   atol=1e-6, rtol=0)
        torch.testing.assert_close(model.encode_text(ids), reference.encode_text(ids, normalize=True),
                                   atol=1e-6, rtol=0)
    assert model.logit_scale("text").item() == pytest.approx(reference.logit_scale.exp().item(), rel=1e-6)
    # the towers are frozen; only the two temperatures (loss parameters, not tower weights) may learn
    assert not any(p.requires_grad for m in ("image", "text") for p in model.encoder(m).trunk.parameters())
    assert [n for n, p in model.named_parameters() if p.requires_grad] == [
        "encoders.image.postprocess.logit_scale.log_scale", "encoders.text.postprocess.logit_scale.log_scale"]
    omniembed.load(f"open_clip:{ARCH}/{TAG}")
    assert len(server.requests) == 1  # open_clip's cache: downloaded once


def test_add_attaches_new_trainable_towers_next_to_the_frozen_ones(tagged, tmp_path):
    tiny_points = get_modality("pointcloud").tiny_config()
    model = omniembed.load(f"open_clip:{ARCH}/{TAG}", add={"pointcloud": tiny_points})
    assert model.modalities == ["image", "text", "pointcloud"] and model.anchor == "image"
    assert all(p.requires_grad for p in model.encoder("pointcloud").parameters())
    assert not any(p.requires_grad for m in ("image", "text") for p in model.encoder(m).trunk.parameters())
    by_name = omniembed.load(f"open_clip:{ARCH}/{TAG}", add=["pointcloud"])
    assert by_name.config.modalities["pointcloud"] == PointCloudConfig()
    # saved, it is a plain checkpoint directory for the binding recipes' model.init
    model.save(tmp_path / "anchor")
    again = omniembed.load(tmp_path / "anchor")
    images = torch.randn(2, 3, 32, 32)
    with torch.inference_mode():
        torch.testing.assert_close(again.encode_image(images), model.encode_image(images), atol=0, rtol=0)
    assert again.config.modalities["image"].tower.weights is None  # the weights live in model.safetensors
    card = (tmp_path / "anchor" / "README.md").read_text()
    assert "frozen open_clip image and text towers; new random towers: pointcloud" in card
    assert f"- source: `open_clip:{ARCH}/{TAG}` — http://127.0.0.1:" in card


def test_open_clip_spec_takes_a_local_weight_file_as_tag(clip, tmp_path, monkeypatch):
    root, reference = clip
    monkeypatch.setenv("OMNIEMBED_CACHE", str(tmp_path / "cache"))
    model = omniembed.load(f"open_clip:{ARCH}/{root / 'tiny-clip.bin'}")
    assert model.source["name"] == f"open_clip:{ARCH}/tiny-clip.bin"
    assert model.source["url"] == "local file tiny-clip.bin"
    images = torch.randn(1, 3, 32, 32)
    with torch.inference_mode():
        torch.testing.assert_close(model.encode_image(images), reference.encode_image(images, normalize=True),
                                   atol=1e-6, rtol=0)


def test_unknown_tag_lists_open_clips_tags(tagged):
    with pytest.raises(omniembed.ConfigError, match=f"no pretrained tag 'nope' for '{ARCH}' \\(tags: \\['{TAG}'\\]"):
        omniembed.load(f"open_clip:{ARCH}/nope")


def test_unreachable_open_clip_download_says_how_to_use_a_local_file(clip, tmp_path, monkeypatch):
    monkeypatch.setenv("OMNIEMBED_CACHE", str(tmp_path / "cache"))
    url = closed_port_url("tiny-clip.bin")
    monkeypatch.setitem(open_clip.pretrained._PRETRAINED, ARCH, {TAG: open_clip.pretrained._pcfg(url=url)})
    with pytest.raises(OfflineError, match=f"open_clip could not fetch '{TAG}' for '{ARCH}' from {url}.*"
                                           f"pass a local file instead: open_clip:{ARCH}/path/to/weights"):
        omniembed.load(f"open_clip:{ARCH}/{TAG}")


def test_add_is_refused_for_sources_that_are_not_open_clip(tmp_path, tiny_model):
    tiny_model.save(tmp_path / "m")
    with pytest.raises(omniembed.ConfigError, match="add= attaches new towers to open_clip: anchors only"):
        omniembed.load(tmp_path / "m", add=["audio"])
    with pytest.raises(omniembed.ConfigError, match="add= attaches new towers to open_clip: anchors only"):
        omniembed.load("hf:org/repo", add=["audio"])


def test_a_recipe_starts_from_an_open_clip_spec_with_a_new_tower_per_bound_modality(clip, tmp_path):
    from omniembed.pretrain import trainer
    from omniembed.pretrain.config import ExperimentConfig
    from omniembed.pretrain.pair_plan import PairPlan

    root, reference = clip
    config = ExperimentConfig.from_dict({
        "model": {"init": f"open_clip:{ARCH}/{root / 'tiny-clip.bin'}", "frozen": ["image", "text"]},
        "data": {"datasets": [{"name": "triplets", "shards": [str(tmp_path / "shards.json")],
                               "pairs": [["image", "pointcloud"], ["text", "pointcloud"]]}]}})
    model = trainer.build_model(config, PairPlan.from_config(config))
    assert model.modalities == ["image", "text", "pointcloud"]
    images = torch.randn(1, 3, 32, 32)
    with torch.inference_mode():
        torch.testing.assert_close(model.encode_image(images), reference.encode_image(images, normalize=True),
                                   atol=1e-6, rtol=0)


def test_models_lists_the_open_clip_entries_that_load(capsys):
    import argparse

    from omniembed.commands import models as models_command

    assert models_command.run(argparse.Namespace(json=True, open_clip=True)) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)["open_clip"]}
    assert rows["open_clip:ViT-B-32/laion2b_s34b_b79k"]["embed_dim"] == 512
    assert rows["open_clip:ViT-B-16/laion2b_s34b_b88k"]["modalities"] == ["image", "text"]
    assert "open_clip:ViT-B-16-SigLIP/webli" not in rows  # its text tower tokenizes with a Hugging Face tokenizer
    assert len(rows) >= 100
