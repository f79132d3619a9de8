"""Depth, thermal and IMU: file loaders, preprocessing values, ImageBind's stems and heads, embed/save/load."""

import numpy as np
import pytest
import torch
from PIL import Image

import omniembed
from omniembed.errors import ConfigError, InputError, UnreadableInputError
from omniembed.modalities.depth import DepthConfig, DepthModality
from omniembed.modalities.imu import ImuConfig, ImuModality, ImuWindowStem
from omniembed.modalities.thermal import ThermalConfig, ThermalModality

KINECT = 0.075 * 518.857901  # baseline (m) × focal (px)


def normalised_disparity(depth_m: float, cfg: DepthConfig = DepthConfig()) -> float:
    disparity = min(max(KINECT / depth_m, 0.01), cfg.disparity_max) / cfg.disparity_max
    return (disparity - cfg.mean) / cfg.std


def save_png16(path, values: np.ndarray) -> None:
    Image.fromarray(values.astype(np.uint16)).save(path)


# ---- depth ---------------------------------------------------------------------------------------------------
def test_16bit_png_in_millimetres_becomes_normalised_disparity(tmp_path):
    path = tmp_path / "room.depth.png"
    save_png16(path, np.full((48, 64), 2000))  # 2 m everywhere
    out = DepthModality(DepthConfig(image_size=32)).prepare(path)
    assert out.shape == (1, 32, 32)
    torch.testing.assert_close(out, torch.full((1, 32, 32), normalised_disparity(2.0)), atol=1e-4, rtol=0)


def test_depth_png_keeps_all_16_bits(tmp_path):
    near, far = tmp_path / "near.png", tmp_path / "far.png"
    save_png16(near, np.full((32, 32), 1000))
    save_png16(far, np.full((32, 32), 40000))  # 40 m: above 8 bits, below max_depth
    mod = DepthModality(DepthConfig(image_size=32))
    assert mod.prepare(far)[0, 0, 0].item() == pytest.approx(normalised_disparity(40.0), abs=1e-4)
    assert mod.prepare(near)[0, 0, 0].item() == pytest.approx(normalised_disparity(1.0), abs=1e-4)


def test_float_npy_in_metres_equals_png_in_millimetres(tmp_path):
    rng = np.random.default_rng(0)
    mm = rng.integers(500, 6000, size=(40, 56))
    save_png16(tmp_path / "a.png", mm)
    np.save(tmp_path / "a.npy", (mm / 1000.0).astype(np.float32))
    mod = DepthModality(DepthConfig(image_size=32))
    torch.testing.assert_close(mod.prepare(tmp_path / "a.npy"), mod.prepare(tmp_path / "a.png"), atol=1e-5, rtol=0)


def test_missing_depth_saturates_like_the_nearest_depth():
    cfg = DepthConfig(image_size=16, interpolation="nearest")
    out = DepthModality(cfg).preprocess(np.zeros((16, 16), np.uint16))
    torch.testing.assert_close(out, torch.full((1, 16, 16), (1.0 - cfg.mean) / cfg.std))


def test_stored_disparity_skips_the_conversion():
    cfg = DepthConfig(image_size=16, stored="disparity", value_scale=1 / 256, mean=0.0, std=1.0)
    out = DepthModality(cfg).preprocess(np.full((16, 16), 30 * 256, np.uint16))  # KITTI-style: disparity × 256
    torch.testing.assert_close(out, torch.full((1, 16, 16), 30 / 75))


def test_depth_config_and_input_errors(tmp_path):
    with pytest.raises(ConfigError, match="depth.stored 'inverse'"):
        DepthModality(DepthConfig(stored="inverse"))
    with pytest.raises(ConfigError, match="depth.baseline must be positive"):
        DepthModality(DepthConfig(baseline=0.0))
    mod = DepthModality(DepthConfig(image_size=16))
    with pytest.raises(InputError, match=r"single-channel map \[H, W\], got shape \(3, 8, 8, 2\)"):
        mod.preprocess(np.zeros((3, 8, 8, 2)))
    with pytest.raises(InputError, match="NaN or Inf"):
        mod.preprocess(np.full((8, 8), np.nan, np.float32))
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG not really")
    with pytest.raises(UnreadableInputError, match="broken.png: cannot read depth map"):
        mod.prepare(bad)


# ---- thermal -------------------------------------------------------------------------------------------------
def test_thermal_8bit_and_16bit_scale_to_unit_range(tmp_path):
    mod = ThermalModality(ThermalConfig(image_size=16))
    Image.fromarray(np.full((20, 20), 255, np.uint8)).save(tmp_path / "hot8.png")
    save_png16(tmp_path / "hot16.png", np.full((20, 20), 65535))
    save_png16(tmp_path / "mid16.png", np.full((20, 20), 32768))
    torch.testing.assert_close(mod.prepare(tmp_path / "hot8.png"), torch.ones(1, 16, 16))
    torch.testing.assert_close(mod.prepare(tmp_path / "hot16.png"), torch.ones(1, 16, 16))
    assert mod.prepare(tmp_path / "mid16.png")[0, 0, 0].item() == pytest.approx(32768 / 65535, abs=1e-6)


def test_thermal_colour_file_is_read_as_luminance(tmp_path):
    grey = np.tile(np.linspace(0, 255, 24, dtype=np.uint8), (24, 1))
    Image.fromarray(np.stack([grey] * 3, axis=-1)).save(tmp_path / "llvip.jpg", quality=100)
    Image.fromarray(grey).save(tmp_path / "grey.png")
    mod = ThermalModality(ThermalConfig(image_size=24))
    torch.testing.assert_close(mod.prepare(tmp_path / "llvip.jpg"), mod.prepare(tmp_path / "grey.png"),
                               atol=2 / 255, rtol=0)


def test_thermal_minmax_stretches_a_narrow_radiometric_band():
    raw = np.tile(np.linspace(21000, 23000, 16), (16, 1)).astype(np.uint16)
    out = ThermalModality(ThermalConfig(image_size=16, scaling="minmax", interpolation="nearest")).preprocess(raw)
    assert out.min().item() == pytest.approx(0.0, abs=1e-6) and out.max().item() == pytest.approx(1.0, abs=1e-6)


# ---- imu -----------------------------------------------------------------------------------------------------
def imu_series(n: int = 2000, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(6, n)).astype(np.float32)


def test_imu_npy_either_layout_and_csv_with_header_and_timestamps_agree(tmp_path):
    series = imu_series()
    np.save(tmp_path / "walk.npy", series)
    np.save(tmp_path / "walk_t.npy", series.T)
    table = np.column_stack([np.arange(2000) / 200.0, series.T])
    header = "t,ax,ay,az,gx,gy,gz"
    np.savetxt(tmp_path / "walk.csv", table, delimiter=",", header=header, comments="", fmt="%.9g")
    mod = ImuModality(ImuConfig())
    expected = torch.from_numpy(series)
    for name in ("walk.npy", "walk_t.npy", "walk.csv"):
        torch.testing.assert_close(mod.prepare(tmp_path / name), expected, atol=1e-6, rtol=0)


def test_imu_longer_series_keep_the_centre_and_shorter_ones_are_zero_padded():
    mod = ImuModality(ImuConfig(num_samples=16, window=8))
    ramp = np.tile(np.arange(24, dtype=np.float32), (6, 1))
    assert mod.preprocess(ramp)[0].tolist() == list(range(4, 20))
    short = mod.preprocess(ramp[:, :10])
    assert short[0].tolist() == list(range(10)) + [0.0] * 6
    start = ImuModality(ImuConfig(num_samples=16, window=8, crop="start")).preprocess(ramp)
    assert start[0].tolist() == list(range(16))


def test_imu_input_errors(tmp_path):
    mod = ImuModality(ImuConfig())
    with pytest.raises(InputError, match=r"expected an IMU series \[6, N\] or \[N, 6\], got shape \(3, 100\)"):
        mod.preprocess(np.zeros((3, 100)))
    with pytest.raises(InputError, match="NaN or Inf"):
        mod.preprocess(np.full((6, 100), np.inf))
    (tmp_path / "eight.csv").write_text("\n".join(",".join(["1"] * 8) for _ in range(4)))
    with pytest.raises(InputError, match="CSV has 8 columns; expected 6"):
        mod.prepare(tmp_path / "eight.csv")
    (tmp_path / "words.csv").write_text("a,b,c\nx,y,z\n")
    with pytest.raises(UnreadableInputError, match="words.csv: cannot read IMU series"):
        mod.prepare(tmp_path / "words.csv")
    with pytest.raises(ConfigError, match="not a multiple of imu.window 8"):
        ImuModality(ImuConfig(num_samples=2001))


def test_imu_csv_columns_pick_the_channels(tmp_path):
    series = imu_series(64)
    table = np.column_stack([np.zeros(64), series.T, np.ones(64)])  # 8 columns: time, 6 channels, a flag
    np.savetxt(tmp_path / "log.csv", table, delimiter=",", fmt="%.9g")
    mod = ImuModality(ImuConfig(num_samples=64, csv_columns=(1, 2, 3, 4, 5, 6)))
    torch.testing.assert_close(mod.prepare(tmp_path / "log.csv"), torch.from_numpy(series), atol=1e-6, rtol=0)


def test_imu_stem_tokens_are_channel_major_windows():
    stem = ImuWindowStem(channels=6, window=8, num_samples=32, width=4)
    with torch.no_grad():
        stem.norm.weight.fill_(1.0), stem.norm.bias.zero_(), stem.pos_embed.zero_()
        stem.proj.weight.copy_(torch.eye(48)[:4])  # token value d = window value d (d < 4): channel 0, samples 0..3
    x = torch.arange(6 * 32, dtype=torch.float32).reshape(1, 6, 32)
    raw = stem.proj(x.unfold(-1, 8, 8).permute(0, 2, 1, 3).reshape(1, 4, 48))
    tokens = stem(x).tokens
    assert tokens.shape == (1, 5, 4)
    torch.testing.assert_close(tokens[:, 1:], torch.nn.functional.layer_norm(raw, (4,), eps=1e-5))
    assert raw[0, 1].tolist() == [8.0, 9.0, 10.0, 11.0]  # second window starts at sample 8 of channel 0


# ---- encoders and the embedding API ---------------------------------------------------------------------------
def test_imagebind_logit_scales_are_fixed_buffers():
    scales = {"depth": (DepthModality, DepthConfig, 5.0), "thermal": (ThermalModality, ThermalConfig, 10.0),
              "imu": (ImuModality, ImuConfig, 5.0)}
    for mod_cls, cfg_cls, value in scales.values():
        enc = mod_cls(cfg_cls()).build_encoder(64)
        assert enc.logit_scale.item() == pytest.approx(value)
        assert "postprocess.logit_scale.log_scale" not in dict(enc.named_parameters())
        assert enc.trunk.transformer.blocks[0].attn.bias_k is not None


def test_imu_head_dropout_acts_only_in_training():
    enc = ImuModality(ImuModality.tiny_config()).build_encoder(16)
    x = torch.from_numpy(imu_series(256)).unsqueeze(0)
    enc.eval()
    torch.testing.assert_close(enc(x), enc(x))
    enc.train()
    torch.manual_seed(1)
    a = enc(x)
    torch.manual_seed(2)
    assert not torch.allclose(a, enc(x))


def sensor_model():
    return omniembed.create({"embed_dim": 16, "anchor": "image", "modalities": {
        "image": {"image_size": 32, "trunk": {"width": 16, "depth": 1, "heads": 2}},
        "depth": omniembed.config.to_dict(DepthModality.tiny_config()),
        "thermal": omniembed.config.to_dict(ThermalModality.tiny_config()),
        "imu": omniembed.config.to_dict(ImuModality.tiny_config())}}, seed=0)


def test_embed_files_then_save_and_load_keep_the_vectors(tmp_path):
    save_png16(tmp_path / "scene.png", np.random.default_rng(1).integers(500, 5000, (40, 50)))
    Image.fromarray(np.random.default_rng(2).integers(0, 255, (40, 50), dtype=np.uint8)).save(tmp_path / "ir.png")
    np.save(tmp_path / "walk.npy", imu_series(300))
    model = sensor_model()
    vectors = {m: model.embed([tmp_path / f], modality=m)
               for m, f in (("depth", "scene.png"), ("thermal", "ir.png"), ("imu", "walk.npy"))}
    for v in vectors.values():
        assert v.shape == (1, 16)
        np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    model.save(tmp_path / "ckpt")
    again = omniembed.load(tmp_path / "ckpt")
    assert again.fingerprint() == model.fingerprint()
    for m, f in (("depth", "scene.png"), ("thermal", "ir.png"), ("imu", "walk.npy")):
        np.testing.assert_array_equal(again.embed([tmp_path / f], modality=m), vectors[m])


# ---- routing by compound suffix ---------------------------------------------------------------------------------
def test_compound_suffixes_route_sensor_files_and_plain_png_stays_an_image(tmp_path):
    rng = np.random.default_rng(3)
    save_png16(tmp_path / "scene.depth.png", rng.integers(500, 5000, (40, 50)))
    Image.fromarray(rng.integers(0, 255, (40, 50), dtype=np.uint8)).save(tmp_path / "ir.thermal.png")
    Image.fromarray(rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)).save(tmp_path / "photo.2024.png")
    np.save(tmp_path / "walk.imu.npy", imu_series(300))
    model = sensor_model()
    files = {"depth": "scene.depth.png", "thermal": "ir.thermal.png", "image": "photo.2024.png", "imu": "walk.imu.npy"}
    assert {m: model.modality_of(tmp_path / f) for m, f in files.items()} == {m: m for m in files}
    mixed = model.embed([tmp_path / f for f in files.values()])
    for row, (m, f) in zip(mixed, files.items()):
        np.testing.assert_array_equal(row, model.embed([tmp_path / f], modality=m)[0])


def test_depth_file_is_refused_by_a_model_without_depth_rather_than_read_as_an_image(tmp_path):
    save_png16(tmp_path / "scene.depth.png", np.full((32, 32), 1500))
    model = omniembed.create({"embed_dim": 16, "modalities": {
        "image": {"image_size": 32, "trunk": {"width": 16, "depth": 1, "heads": 2}}}}, seed=0)
    assert model.modality_of(tmp_path / "scene.depth.png") is None
    with pytest.raises(InputError, match=r"scene\.depth\.png: the model has no 'depth' encoder"):
        model.embed([tmp_path / "scene.depth.png"])
