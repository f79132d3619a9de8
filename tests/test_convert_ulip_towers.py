"""The image / text towers inside ULIP checkpoints: converted through the open_clip and timm paths with the
reference's numerics, or named as skipped."""

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from omniembed.convert import from_ulip
from omniembed.errors import CheckpointError

from conftest import shared_path

open_clip = pytest.importorskip("open_clip")
timm = pytest.importorskip("timm")
POINT_ARGS = {"num_heads": 4, "num_group": 16, "group_size": 8, "npoints": 256}


def tiny_clip_arch(tmp_path_factory, name: str, embed_dim: int, quick_gelu: bool = False) -> str:
    """A one-block CLIP registered with open_clip (32 px images, 32-wide text), projecting to ``embed_dim``."""
    cfg = {"embed_dim": embed_dim, "quick_gelu": quick_gelu,
           "vision_cfg": {"image_size": 32, "layers": 1, "width": 64, "head_width": 32, "patch_size": 16},
           "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}}
    path = tmp_path_factory.mktemp("arch") / f"{name}.json"
    path.write_text(json.dumps(cfg))
    open_clip.add_model_config(path)
    return name


def randomised(module: torch.nn.Module, seed: int) -> torch.nn.Module:
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        with torch.no_grad():  # zero biases and unit norms would hide a mis-placed tensor
            for p in module.parameters():
                p.add_(torch.randn_like(p) * 0.02)
    return module.eval()


@pytest.fixture(scope="module")
def point_state():
    fixture = shared_path("fixtures", "ulip-pointbert-tiny")
    return {**load_file(str(fixture / "model.safetensors")),
            **load_file(str(fixture / "ulip2_colored_delta.safetensors"))}


@pytest.fixture(scope="module")
def ulip2(point_state, tmp_path_factory):
    """A ULIP-2 checkpoint saved whole: the point branch plus ``open_clip_model.*`` (a tiny open_clip CLIP)."""
    arch = tiny_clip_arch(tmp_path_factory, "omniembed-test-ulip2-clip", 1280)
    clip = randomised(open_clip.create_model(arch), 0)
    state = {f"module.{k}": v for k, v in point_state.items()}
    state.update({f"module.open_clip_model.{k}": v for k, v in clip.state_dict().items()})
    return state, clip, arch


def test_ulip2_open_clip_towers_give_open_clips_embeddings(ulip2):
    state, clip, arch = ulip2
    model = from_ulip(state, {**POINT_ARGS, "clip_arch": arch})
    assert sorted(model.modalities) == ["image", "pointcloud", "text"] and model.anchor == "image"
    images = torch.randn(2, 3, 32, 32)
    ids = open_clip.get_tokenizer(arch)(["a point cloud model of a chair.", "There is a lamp in the scene."])
    with torch.inference_mode():
        torch.testing.assert_close(model.encode_image(images, normalize=False), clip.encode_image(images),
                                   atol=0, rtol=0)
        # fp32 rounding, not equality: on an AVX2-only CPU the two text towers' kernels sum in another order (1.6e-6)
        torch.testing.assert_close(model.encode_text(ids, normalize=False), clip.encode_text(ids))
    assert any("open_clip" in t for t in model.source["towers_converted"])


def test_towers_can_be_left_out_and_are_then_named(ulip2):
    state, _, arch = ulip2
    model = from_ulip(state, {**POINT_ARGS, "clip_arch": arch}, towers=False)
    assert model.modalities == ["pointcloud"]
    assert model.source["towers_converted"] == []
    assert model.source["towers_skipped"] == [f"image + text (open_clip_model.*, {len(ulip2[1].state_dict())} "
                                                  f"tensors)"]


def test_towers_missing_from_a_ulip2_checkpoint_come_from_a_local_open_clip_file(ulip2, point_state, tmp_path):
    _, clip, arch = ulip2
    clip_file = tmp_path / "bigG.safetensors"
    save_file({k: v.contiguous() for k, v in clip.state_dict().items()}, str(clip_file))
    model = from_ulip(point_state, {**POINT_ARGS, "clip_arch": arch, "clip_weights": str(clip_file)})
    ids = open_clip.get_tokenizer(arch)(["a point cloud model of a lamp."])
    with torch.inference_mode():
        torch.testing.assert_close(model.encode_text(ids, normalize=False), clip.encode_text(ids), atol=0, rtol=0)
    assert model.source["clip_weights"] == clip_file.name


def test_a_tower_of_another_architecture_is_refused_naming_its_keys(ulip2, tmp_path_factory):
    state, _, _ = ulip2
    other = tiny_clip_arch(tmp_path_factory, "omniembed-test-ulip2-other", 1280)
    state = {k: v for k, v in state.items() if "resblocks.0.mlp" not in k}
    with pytest.raises(CheckpointError, match=r"towers do not fit.*missing.*resblocks\.0\.mlp"):
        from_ulip(state, {**POINT_ARGS, "clip_arch": other})


def test_ulip1_slip_towers_become_open_clip_text_and_timm_image(point_state, tmp_path_factory):
    """ULIP-1 keeps SLIP's towers at the top level: OpenAI-layout text (QuickGELU) and a timm ViT + projection."""
    arch = tiny_clip_arch(tmp_path_factory, "omniembed-test-ulip1-clip", 512, quick_gelu=True)
    text = randomised(open_clip.create_model(arch), 1)
    vision = randomised(timm.create_model("vit_tiny_patch16_224", num_classes=0, img_size=32, depth=1), 2)
    image_projection = torch.randn(vision.num_features, 512) * 0.05
    state = {k: v for k, v in point_state.items() if k != "pc_projection"}
    state["pc_projection"] = torch.randn(64, 512) * 0.1
    state.update({k: v for k, v in text.state_dict().items() if not k.startswith("visual.")})
    state.update({f"visual.{k}": v for k, v in vision.state_dict().items()})
    state["image_projection"] = image_projection
    model = from_ulip(state, {**POINT_ARGS, "clip_arch": arch,
                              "vision_model": "vit_tiny_patch16_224", "vision_kwargs": {"img_size": 32, "depth": 1}})
    images = torch.randn(2, 3, 32, 32)
    ids = open_clip.get_tokenizer(arch)(["a point cloud model of a chair."])
    with torch.inference_mode():
        torch.testing.assert_close(model.encode_text(ids, normalize=False), text.encode_text(ids), atol=0, rtol=0)
        torch.testing.assert_close(model.encode_image(images, normalize=False), vision(images) @ image_projection,
                                   atol=1e-6, rtol=0)
    image = model.config.modalities["image"]
    assert (image.mean, image.interpolation) == ((0.485, 0.456, 0.406), "bilinear")  # SLIP's eval transform
