"""ImageBind → OmniEmbed: reference outputs reproduced, size inference, round trips, clear errors on bad files."""

import argparse
import json
import math

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import omniembed
from omniembed.commands import convert as convert_command
from omniembed.convert import ImageBindArch, from_imagebind, load_imagebind
from omniembed.convert.imagebind_arch import MODALITIES, expected_shapes, infer_arch
from omniembed.errors import CheckpointError, ConfigError

from conftest import shared_path

NAMES = {"vision": "image"}
"""ImageBind modality key → OmniEmbed modality (the rest keep their names)."""


@pytest.fixture(scope="module")
def fixture_dir():
    return shared_path("fixtures", "imagebind-tiny")


@pytest.fixture(scope="module")
def reference(fixture_dir):
    """(state dict, constructor arguments, io tensors) of the tiny random ImageBind."""
    return (load_file(str(fixture_dir / "model.safetensors")), json.loads((fixture_dir / "config.json").read_text()),
            load_file(str(fixture_dir / "io.safetensors")))


@pytest.fixture(scope="module")
def converted(reference):
    state, args, _ = reference
    return from_imagebind(state, args)


def reference_style(model, modality: str, batch: torch.Tensor) -> torch.Tensor:
    """What ImageBind's forward returns: the logit scale × the mean over clips of the clips' unit vectors."""
    encoder = model.encoder(NAMES.get(modality, modality))
    with torch.inference_mode():
        return encoder.clip_embeddings(batch).mean(dim=1) * encoder.logit_scale


def video_views(model, batch: torch.Tensor) -> torch.Tensor:
    """A video [B, V, 3, T, H, W] of V views through the vision encoder, averaged over views (as ImageBind)."""
    encoder = model.encoder("image")
    with torch.inference_mode():
        per_view = encoder.clip_embeddings(batch.flatten(0, 1))[:, 0].unflatten(0, batch.shape[:2])
    return per_view.mean(dim=1) * encoder.logit_scale


# ---- numerics ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("modality", MODALITIES)
def test_converted_model_reproduces_imagebind_outputs(converted, reference, modality):
    _, _, io = reference
    out = reference_style(converted, modality, io[f"input.{modality}"])
    torch.testing.assert_close(out, io[f"output.{modality}"], atol=1e-4, rtol=0)


def test_video_views_through_the_vision_encoder_reproduce_imagebind(converted, reference):
    _, _, io = reference
    torch.testing.assert_close(video_views(converted, io["input.video"]), io["output.video"], atol=1e-4, rtol=0)


def test_video_modality_embeds_the_reference_views_in_the_reference_direction(converted, reference):
    _, _, io = reference
    video = converted.processor("video").config
    assert (video.n_clips, video.clip_seconds, video.frames_per_clip, video.spatial_crops, video.fusion) == \
        (5, 2.0, 2, 3, "frames")
    batch = {"frames": io["input.video"], "has_audio": torch.tensor([False])}
    expected = torch.nn.functional.normalize(io["output.video"], dim=-1)
    torch.testing.assert_close(converted.encode("video", batch), expected, atol=1e-5, rtol=0)


def test_embed_returns_unit_vectors_and_the_scale_is_exposed(converted, reference):
    _, _, io = reference
    for modality in ("text", "audio", "depth", "thermal", "imu"):
        name = NAMES.get(modality, modality)
        unit = converted.encode(name, io[f"input.{modality}"])
        np.testing.assert_allclose(unit.norm(dim=-1).detach().numpy(), 1.0, atol=1e-5)
    assert converted.logit_scale("text").item() == pytest.approx(1 / 0.07, rel=1e-5)  # learnable, from the file
    assert {m: converted.logit_scale(m).item() for m in ("audio", "depth", "thermal", "imu", "image")} == \
        pytest.approx({"audio": 20.0, "depth": 5.0, "thermal": 10.0, "imu": 5.0, "image": 1.0})


def test_fixture_texts_tokenize_to_the_reference_ids(converted, reference, fixture_dir):
    _, _, io = reference
    texts = json.loads((fixture_dir / "texts.json").read_text())
    ids = converted.processor("text").tokenizer(texts)
    torch.testing.assert_close(ids, io["input.text"][:, :ids.shape[1]])
    assert not io["input.text"][:, ids.shape[1]:].any()


def test_embed_of_text_strings_matches_the_reference_direction(converted, reference, fixture_dir):
    _, _, io = reference
    texts = json.loads((fixture_dir / "texts.json").read_text())
    vectors = torch.from_numpy(converted.embed(texts))
    expected = torch.nn.functional.normalize(io["output.text"], dim=-1)
    torch.testing.assert_close(vectors, expected, atol=1e-5, rtol=0)


def test_bf16_autocast_stays_within_cosine_0_999_of_fp32(converted, reference, fixture_dir):
    _, _, io = reference
    for modality in MODALITIES:  # the autocast embed(precision="bf16") runs, on the reference inputs
        encoder = converted.encoder(NAMES.get(modality, modality))
        with torch.inference_mode():
            fp32 = encoder(io[f"input.{modality}"])
            with torch.autocast("cpu", dtype=torch.bfloat16):
                bf16 = encoder(io[f"input.{modality}"]).float()
        assert torch.nn.functional.cosine_similarity(fp32, bf16).min() >= 0.999, modality
    texts = json.loads((fixture_dir / "texts.json").read_text())
    cosine = (converted.embed(texts) * converted.embed(texts, precision="bf16")).sum(axis=1)
    assert cosine.min() >= 0.999


# ---- sizes from shapes ---------------------------------------------------------------------------------------
def test_layout_spec_matches_the_real_state_dict(reference):
    state, args, _ = reference
    arch = ImageBindArch.from_mapping(args)
    spec = {k: v for m in MODALITIES for k, v in expected_shapes(arch, m).items()}
    assert spec == {k: tuple(v.shape) for k, v in state.items()}


def test_shapes_alone_give_the_tiny_architecture_once_heads_are_given(reference):
    state, args, _ = reference
    heads = {k: v for k, v in args.items() if k.endswith("_num_heads")}
    arch, window = infer_arch(state, heads)
    expected = ImageBindArch.from_mapping({k: v for k, v in args.items() if not k.endswith("drop_path")})
    assert window == 8
    assert arch == expected


def test_imagebind_huge_is_recognised_from_shapes_alone():
    huge = {k: torch.empty(s, device="meta")
            for m in MODALITIES for k, s in expected_shapes(ImageBindArch(), m).items()}
    huge["modality_preprocessors.text.mask"] = torch.full((77, 77), float("-inf")).triu(1)
    arch, window = infer_arch(huge)
    assert arch == ImageBindArch() and window == 8
    params = sum(t.numel() for k, t in huge.items() if not k.endswith(".mask"))
    assert 1.1e9 < params < 1.3e9  # "about 1.2 B parameters in all"


def test_unreleased_width_without_head_count_is_a_clear_error(reference):
    state, _, _ = reference
    with pytest.raises(ConfigError, match=r"vision trunk is 64 wide.*give vision_num_heads"):
        from_imagebind(state)


# ---- round trips and the command line ------------------------------------------------------------------------
def test_convert_save_load_gives_identical_outputs(converted, reference, tmp_path):
    _, _, io = reference
    converted.save(tmp_path / "ib")
    again = omniembed.load(tmp_path / "ib")
    assert again.fingerprint() == converted.fingerprint()
    assert again.modalities == ["image", "text", "audio", "depth", "thermal", "imu", "video"]
    for modality in MODALITIES:
        torch.testing.assert_close(reference_style(again, modality, io[f"input.{modality}"]),
                                   reference_style(converted, modality, io[f"input.{modality}"]), atol=0, rtol=0)


def run_convert(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    convert_command.add_arguments(parser)
    return convert_command.run(parser.parse_args(list(argv)))


def test_cli_converts_a_weights_only_pth(reference, fixture_dir, tmp_path, capsys):
    state, _, io = reference
    torch.save({"model": state}, tmp_path / "imagebind_tiny.pth")
    assert run_convert("imagebind", str(tmp_path / "imagebind_tiny.pth"), str(tmp_path / "out"),
                       "--config", str(fixture_dir / "config.json")) == 0
    assert "imagebind, image, text, audio, depth, thermal, imu, video; embed_dim 32" in capsys.readouterr().out
    model = omniembed.load(tmp_path / "out")
    torch.testing.assert_close(reference_style(model, "depth", io["input.depth"]), io["output.depth"],
                               atol=1e-4, rtol=0)


def test_subset_of_modalities_and_ddp_prefix(reference):
    state, args, io = reference
    wrapped = {f"module.{k}": v for k, v in state.items()}
    model = from_imagebind(wrapped, args, modalities=["vision", "imu"])
    assert model.modalities == ["image", "imu", "video"]
    torch.testing.assert_close(reference_style(model, "imu", io["input.imu"]), io["output.imu"], atol=1e-4, rtol=0)


# ---- bad files ---------------------------------------------------------------------------------------------
def test_truncated_state_dict_names_the_missing_keys(reference):
    state, args, _ = reference
    cut = {k: v for k, v in state.items() if not k.startswith("modality_trunks.audio.blocks.1.")}
    with pytest.raises(CheckpointError, match=r"missing \(14\): modality_trunks\.audio\.blocks\.1\.attn\.bias_k"):
        from_imagebind(cut, args)


def test_extra_and_mis_shaped_tensors_are_named(reference):
    state, args, _ = reference
    odd = dict(state)
    odd["modality_heads.vision.3.weight"] = torch.zeros(2)
    odd["modality_preprocessors.depth.pos_embedding_helper.pos_embed"] = torch.zeros(1, 50, 32)
    with pytest.raises(CheckpointError) as info:
        from_imagebind(odd, args)
    message = str(info.value)
    assert "unexpected (1): modality_heads.vision.3.weight" in message
    assert "shape mismatch (1): modality_preprocessors.depth.pos_embedding_helper.pos_embed (1, 50, 32)" in message


def test_foreign_checkpoint_is_refused_with_its_keys(tmp_path):
    foreign = {"visual.conv1.weight": torch.zeros(4, 3, 2, 2), "token_embedding.weight": torch.zeros(10, 4)}
    torch.save(foreign, tmp_path / "clip.pth")
    with pytest.raises(CheckpointError, match=r"clip\.pth: not an ImageBind state dict .*token_embedding\.weight"):
        load_imagebind(tmp_path / "clip.pth")


def test_truncated_file_and_pickled_code_are_refused(reference, tmp_path):
    state, _, _ = reference
    torch.save(state, tmp_path / "full.pth")
    data = (tmp_path / "full.pth").read_bytes()
    (tmp_path / "cut.pth").write_bytes(data[: len(data) // 3])
    with pytest.raises(CheckpointError, match=r"cut\.pth: cannot read"):
        load_imagebind(tmp_path / "cut.pth")
    torch.save({"model": argparse.Namespace(x=1)}, tmp_path / "code.pth")
    with pytest.raises(CheckpointError, match=r"code\.pth: cannot read as a torch weight file without unpickling"):
        load_imagebind(tmp_path / "code.pth")


def test_text_mask_must_be_causal(reference):
    state, args, _ = reference
    odd = dict(state)
    odd["modality_preprocessors.text.mask"] = torch.zeros(77, 77)
    with pytest.raises(CheckpointError, match="text.mask is not the causal mask"):
        from_imagebind(odd, args)


def test_logit_scale_values_come_from_the_file(reference):
    state, args, io = reference
    odd = dict(state)
    odd["modality_postprocessors.text.1.log_logit_scale"] = torch.tensor(math.log(50.0))
    model = from_imagebind(odd, args, modalities=["vision", "text"])
    assert model.logit_scale("text").item() == pytest.approx(50.0)
