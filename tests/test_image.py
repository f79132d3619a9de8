"""Image modality: decoding, preprocessing numerics, stems, timm backbones."""

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms import v2

from omniembed.errors import ConfigError, InputError
from omniembed.modalities.image import CLIP_MEAN, CLIP_STD, ImageConfig, ImageModality, TimmConfig
from omniembed.config import TransformerConfig


def modality(**overrides) -> ImageModality:
    return ImageModality(ImageConfig(**{"image_size": 32, **overrides}))


def test_preprocess_resizes_short_side_then_centre_crops_and_normalises():
    pixels = torch.full((3, 40, 80), 255, dtype=torch.uint8)
    out = modality().preprocess(pixels)
    assert out.shape == (3, 32, 32)
    expected = (1.0 - torch.tensor(CLIP_MEAN)) / torch.tensor(CLIP_STD)
    torch.testing.assert_close(out.mean(dim=(1, 2)), expected, atol=1e-4, rtol=0)


def test_centre_crop_keeps_the_middle():
    pixels = torch.zeros((3, 32, 96), dtype=torch.uint8)
    pixels[:, :, 32:64] = 255  # only the middle third is white
    out = modality(mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0)).preprocess(pixels)
    assert out.min() > 0.99


def test_file_array_pil_and_hwc_inputs_agree(image_files):
    mod = modality()
    from_file = mod.prepare(image_files["png"])
    pil = Image.open(image_files["png"])
    hwc = np.array(pil.convert("RGB"))
    torch.testing.assert_close(mod.preprocess(pil), from_file)
    torch.testing.assert_close(mod.preprocess(hwc), from_file)
    torch.testing.assert_close(mod.preprocess(torch.from_numpy(hwc).permute(2, 0, 1)), from_file)


def test_bmp_is_decoded_with_pil(image_files):
    out = modality().prepare(image_files["bmp"])
    assert out.shape == (3, 32, 32) and torch.isfinite(out).all()


def test_grayscale_and_rgba_become_rgb(tmp_path):
    gray = tmp_path / "g.png"
    Image.fromarray(np.full((40, 40), 128, np.uint8), mode="L").save(gray)
    rgba = tmp_path / "a.png"
    Image.fromarray(np.full((40, 40, 4), 128, np.uint8), mode="RGBA").save(rgba)
    mod = modality()
    assert mod.prepare(gray).shape == (3, 32, 32)
    torch.testing.assert_close(mod.prepare(gray), mod.prepare(rgba))


def test_nan_pixels_are_rejected():
    pixels = torch.rand(3, 40, 40)
    pixels[0, 3, 3] = float("nan")
    with pytest.raises(InputError, match="NaN"):
        modality().preprocess(pixels)


def test_wrong_shape_and_empty_arrays_are_rejected():
    with pytest.raises(InputError, match=r"must be \[3, H, W\]"):
        modality().preprocess(np.zeros((5, 5, 5, 3), np.uint8))
    with pytest.raises(InputError, match="empty"):
        modality().preprocess(np.zeros((3, 0, 10), np.uint8))


def test_unknown_interpolation_is_a_config_error():
    with pytest.raises(ConfigError, match="interpolation 'lanczos9'"):
        modality(interpolation="lanczos9")


def test_native_vit_encoder_gives_unit_vectors_of_the_shared_dim():
    mod = modality(patch_size=8, trunk=TransformerConfig(width=32, depth=1, heads=2, pre_norm=True))
    enc = mod.build_encoder(24).eval()
    out = enc(torch.randn(5, 3, 32, 32))
    assert out.shape == (5, 24)
    torch.testing.assert_close(out.norm(dim=-1), torch.ones(5))
    assert enc.stem(torch.randn(2, 3, 32, 32)).tokens.shape == (2, 1 + 16, 32)


def test_temporal_stem_treats_an_image_as_a_repeated_clip():
    mod = modality(patch_size=8, temporal_kernel=2, trunk=TransformerConfig(width=32, depth=1, heads=2))
    enc = mod.build_encoder(16).eval()
    image = torch.randn(2, 3, 32, 32)
    clip = image.unsqueeze(2).repeat(1, 1, 2, 1, 1)
    torch.testing.assert_close(enc(image), enc(clip))


def test_timm_backbone_is_a_trunk_with_a_projection_head(tmp_path):
    mod = modality(tower=TimmConfig(name="test_resnet"))
    enc = mod.build_encoder(16).eval()
    out = enc(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 16)
    weights = tmp_path / "resnet.safetensors"
    from omniembed.io import save_tensors

    save_tensors(weights, enc.trunk.model.state_dict())
    again = modality(tower=TimmConfig(name="test_resnet", weights=str(weights))).build_encoder(16)
    for key, value in enc.trunk.model.state_dict().items():
        torch.testing.assert_close(again.trunk.model.state_dict()[key], value)


def test_timm_backbone_runs_channels_last_with_the_same_outputs_and_weights():
    torch.manual_seed(0)
    fast = modality(tower=TimmConfig(name="test_resnet", channels_last=True)).build_encoder(16).eval()
    plain = modality(tower=TimmConfig(name="test_resnet")).build_encoder(16).eval()
    plain.load_state_dict(fast.state_dict())
    conv = next(p for p in fast.trunk.model.parameters() if p.ndim == 4)
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    images = torch.randn(3, 3, 32, 32)
    torch.testing.assert_close(fast(images), plain(images), atol=1e-5, rtol=1e-5)


def test_timm_weights_that_do_not_fit_are_rejected(tmp_path):
    from omniembed.io import save_tensors

    weights = tmp_path / "other.safetensors"
    save_tensors(weights, {"conv1.weight": torch.zeros(1)})
    with pytest.raises(ConfigError, match="does not fit timm 'test_resnet'"):
        modality(tower=TimmConfig(name="test_resnet", weights=str(weights))).build_encoder(16)


def test_unknown_timm_model_is_a_config_error():
    with pytest.raises(ConfigError, match="timm has no model 'no_such_net'"):
        modality(tower=TimmConfig(name="no_such_net")).build_encoder(16)


def test_timm_kwargs_reach_create_model_and_bad_ones_are_config_errors():
    small = modality(tower=TimmConfig(name="test_resnet", kwargs={"drop_rate": 0.5})).build_encoder(16)
    assert small.trunk.model.drop_rate == 0.5
    with pytest.raises(ConfigError, match="test_resnet"):
        modality(tower=TimmConfig(name="test_resnet", kwargs={"no_such_argument": 1})).build_encoder(16)
