"""Google's speech embedding as a frozen audio front end: equal to openWakeWord's ONNX models, frozen in training,
self-contained once saved."""

from __future__ import annotations

import importlib.util
import shutil

import numpy as np
import pytest
import torch

import omniembed
from omniembed.config import from_dict
from omniembed.nn import speech_embedding
from omniembed.errors import ConfigError
from omniembed.modalities.audio import AudioConfig, AudioModality
from omniembed.nn.speech_embedding import (WINDOW_FRAMES, SpeechEmbeddingConfig, SpeechEmbeddingTrunk, SpeechLogMel,
                                           onnx_weights_path)
from omniembed.nn.tokens import Tokens

from local_server import LocalFileServer, closed_port_url

HAS_WEIGHTS = importlib.util.find_spec("onnx") is not None and importlib.util.find_spec("openwakeword") is not None
needs_weights = pytest.mark.skipif(not HAS_WEIGHTS, reason="needs onnx and openwakeword 0.5.x (omniembed[speech])")

SPEECH_AUDIO = {"sample_rate": 16000, "n_mels": 32, "n_clips": 1, "clip_seconds": 1.0, "target_frames": 100,
                "fbank": "speech_embedding", "tower": {"kind": "speech_embedding", "width": 16}}


def _voice(seconds: float = 1.0, seed: int = 0) -> np.ndarray:
    """A vowel-like test signal: a 140 Hz pulse train's harmonics under two formants, plus a little noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * 16000)) / 16000
    wave = sum(np.sin(2 * np.pi * 140 * k * t) / k * (1.5 if 4 <= k <= 6 or 15 <= k <= 17 else 0.3)
               for k in range(1, 25))
    return (0.1 * wave * np.hanning(t.size) + rng.normal(0, 0.003, t.size)).astype(np.float32)


def _hide_openwakeword(monkeypatch) -> None:
    """Make the installed openwakeword package unfindable, as on a machine without the extra."""
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "openwakeword" else real(name, *a))


def _speech_model():
    return omniembed.create({"embed_dim": 16, "anchor": "audio", "modalities": {"audio": SPEECH_AUDIO}}, seed=0)


@needs_weights
def test_features_and_vectors_equal_openwakewords_onnx_models():
    from onnx.reference import ReferenceEvaluator

    path = onnx_weights_path("openwakeword")
    wave = np.pad(_voice(0.8), (1000, 0))[: 512 + 160 * 99]
    wave = np.pad(wave, (0, 512 + 160 * 99 - wave.size))
    wave = (wave * 0.1 / np.sqrt(np.mean(wave.astype(np.float64) ** 2))).astype(np.float32)  # the level it sets
    mel = ReferenceEvaluator(str(path.parent / "melspectrogram.onnx"))
    reference = mel.run(None, {"input": (wave * 32767)[None]})[0].squeeze() / 10 + 2          # [100, 32]
    ours = SpeechLogMel()([torch.from_numpy(wave)], 100)
    assert ours.shape == (1, 1, 32, 100)
    np.testing.assert_allclose(ours[0, 0].numpy(), reference.T, atol=5e-5)

    windows = np.stack([reference[i:i + WINDOW_FRAMES] for i in range(0, 100 - WINDOW_FRAMES + 1, 8)])
    vectors = ReferenceEvaluator(str(path)).run(None, {"input_1": windows[..., None].astype(np.float32)})[0]
    trunk = SpeechEmbeddingTrunk(SpeechEmbeddingConfig(width=0))
    got = trunk.embed_windows(torch.from_numpy(windows).unsqueeze(1).float())
    np.testing.assert_allclose(got.numpy(), vectors.reshape(len(windows), 96), atol=1e-4 * np.abs(vectors).max())


def test_a_clip_is_levelled_and_centred_in_the_frames():
    mel = SpeechLogMel()
    short = _voice(0.3)                                          # 30 of the 100 frames
    a, louder = mel([torch.from_numpy(short), torch.from_numpy(4 * short)], 100)
    torch.testing.assert_close(a, louder, atol=1e-4, rtol=0)
    assert a.shape == (1, 32, 100)
    energy = a[0].sum(dim=0)                                     # [100]
    floor = energy.min()
    assert torch.allclose(energy[:30], floor) and torch.allclose(energy[-30:], floor)
    assert energy[40:60].min() > floor + 50
    length = 512 + 160 * 99
    long = _voice(2.0)
    middle = long[(long.size - length) // 2:][:length]
    torch.testing.assert_close(mel([torch.from_numpy(long)], 100), mel([torch.from_numpy(middle)], 100))


def test_trunk_pools_mean_and_max_over_the_windows():
    trunk = SpeechEmbeddingTrunk(SpeechEmbeddingConfig(width=8, weights_in_checkpoint=True))
    feats = torch.randn(3, 1, 32, 100)
    out = trunk(Tokens(feats)).tokens
    assert out.shape == (3, 1, 16) and trunk.width == 16
    windows = feats[0, 0].T.unfold(0, WINDOW_FRAMES, 8).permute(0, 2, 1).unsqueeze(1)          # [4, 1, 76, 32]
    vectors = trunk.project(trunk.embed_windows(windows.contiguous()))
    torch.testing.assert_close(out[0, 0], torch.cat([vectors.mean(0), vectors.amax(0)]))
    with pytest.raises(ValueError, match="T ≥ 76"):
        trunk(Tokens(torch.randn(1, 1, 32, 50)))


def test_one_pass_over_the_clip_equals_the_windows_one_by_one():
    trunk = SpeechEmbeddingTrunk(SpeechEmbeddingConfig(width=0, weights_in_checkpoint=True))
    for name, buffer in trunk.named_buffers():                    # random weights: zeros would hide a misalignment
        buffer.normal_(0, 0.3 if name.endswith("weight") else 0.1)
    frames = torch.randn(2, 1, 130, 32)                          # windows start every 8 frames: 0 … 48
    windows = frames[:, 0].unfold(1, WINDOW_FRAMES, 8).permute(0, 1, 3, 2).reshape(-1, 1, WINDOW_FRAMES, 32)
    one_by_one = trunk.embed_windows(windows.contiguous()).reshape(2, 7, 96)
    torch.testing.assert_close(trunk.embed_sequence(frames), one_by_one, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("change, message", [
    ({"fbank": "batched"}, "needs fbank 'speech_embedding'"),
    ({"tower": None}, "needs fbank 'speech_embedding'"),
    ({"sample_rate": 8000}, "sample_rate"),
    ({"n_mels": 40}, "n_mels"),
    ({"target_frames": 60}, "target_frames must be >= 76"),
    ({"tower": {"kind": "speech_embedding", "step": 12}}, "multiple of 8"),
])
def test_the_tower_and_its_features_come_together(change, message):
    data = {**SPEECH_AUDIO, "tower": {**SPEECH_AUDIO["tower"], "weights_in_checkpoint": True}, **change}
    with pytest.raises(ConfigError, match=message):
        AudioModality(from_dict(AudioConfig, data, "audio"))


def test_without_the_package_or_a_network_the_error_names_the_extra_and_where_to_put_the_file(monkeypatch, tmp_path):
    _hide_openwakeword(monkeypatch)
    monkeypatch.setenv("OMNIEMBED_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(speech_embedding, "RELEASE_URL", closed_port_url("embedding_model.onnx"))
    with pytest.raises(ConfigError, match=r"omniembed\[speech\].*put http://127\.0\.0\.1.* at .*cache/downloads"):
        onnx_weights_path("openwakeword")
    with pytest.raises(ConfigError, match="is not a file"):
        onnx_weights_path("/nonexistent/embedding_model.onnx")


@needs_weights
def test_without_the_package_the_released_file_is_downloaded_once_and_gives_the_same_network(monkeypatch, tmp_path):
    bundled = onnx_weights_path("openwakeword")
    root = tmp_path / "www"
    root.mkdir()
    shutil.copy(bundled, root / "embedding_model.onnx")
    _hide_openwakeword(monkeypatch)
    monkeypatch.setenv("OMNIEMBED_CACHE", str(tmp_path / "cache"))
    with LocalFileServer(root) as server:
        monkeypatch.setattr(speech_embedding, "RELEASE_URL", server.url("embedding_model.onnx"))
        first = SpeechEmbeddingTrunk(SpeechEmbeddingConfig())
        again = SpeechEmbeddingTrunk(SpeechEmbeddingConfig())
        assert len(server.requests) == 1
    expected = SpeechEmbeddingTrunk(SpeechEmbeddingConfig(weights=str(bundled)))
    for name, buffer in expected.named_buffers():
        assert torch.equal(dict(first.named_buffers())[name], buffer)
        assert torch.equal(dict(again.named_buffers())[name], buffer)


@needs_weights
def test_a_downloaded_file_that_is_not_the_network_is_deleted_and_named(monkeypatch, tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    (root / "embedding_model.onnx").write_bytes(b"<html>not found</html>")
    _hide_openwakeword(monkeypatch)
    monkeypatch.setenv("OMNIEMBED_CACHE", str(tmp_path / "cache"))
    with LocalFileServer(root) as server:
        monkeypatch.setattr(speech_embedding, "RELEASE_URL", server.url("embedding_model.onnx"))
        with pytest.raises(ConfigError, match="not a readable ONNX model.*the download was deleted"):
            onnx_weights_path("openwakeword")
    assert not list((tmp_path / "cache" / "downloads").glob("*.onnx"))


@needs_weights
def test_saved_model_loads_without_the_package_and_embeds_the_same(tmp_path, monkeypatch):
    model = _speech_model()
    clips = [(_voice(0.6, seed), 16000) for seed in range(3)]
    before = model.embed(clips, modality="audio")
    model.save(tmp_path / "m")
    _hide_openwakeword(monkeypatch)
    loaded = omniembed.load(tmp_path / "m")
    np.testing.assert_array_equal(loaded.embed(clips, modality="audio"), before)


@needs_weights
def test_bf16_convolutions_stay_within_a_percent_of_fp32_and_hand_back_float32():
    frames = torch.randn(3, 1, 100, 32)
    exact = SpeechEmbeddingTrunk(SpeechEmbeddingConfig()).embed_sequence(frames)
    fast = SpeechEmbeddingTrunk(SpeechEmbeddingConfig(precision="bf16")).embed_sequence(frames)
    assert fast.dtype == torch.float32 and fast.shape == exact.shape
    assert (fast - exact).abs().max() <= 0.02 * exact.abs().max()


def test_auto_precision_takes_bfloat16_only_where_the_cpu_runs_it_natively(monkeypatch):
    trunk = SpeechEmbeddingTrunk(SpeechEmbeddingConfig(precision="auto", weights_in_checkpoint=True))
    frames = torch.zeros(1, 1, WINDOW_FRAMES, 32)
    for native, dtype in ((True, torch.bfloat16), (False, torch.float32)):
        monkeypatch.setattr(speech_embedding, "runs_natively", lambda device, wanted, native=native: native)
        assert trunk.compute_dtype(frames) == dtype
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert trunk.compute_dtype(frames) == torch.bfloat16
    with pytest.raises(ConfigError, match=r"audio.tower.precision 'fp8' is not one of \['fp32', 'bf16', 'auto'\]"):
        SpeechEmbeddingTrunk(SpeechEmbeddingConfig(precision="fp8", weights_in_checkpoint=True))


@needs_weights
def test_training_moves_the_head_and_never_the_frozen_network():
    encoder = _speech_model().encoder("audio")
    trainable = {n for n, p in encoder.named_parameters() if p.requires_grad}
    assert trainable and all("project" in n or "head" in n or "scale" in n for n in trainable)
    frozen = {n: b.clone() for n, b in encoder.named_buffers() if "conv" in n}
    assert len(frozen) == 39  # 20 weights, 19 biases
    optimizer = torch.optim.SGD(encoder.parameters(), lr=0.1)
    features = SpeechLogMel()([torch.from_numpy(_voice(0.8, s)) for s in range(4)], 100)[:, None]   # [4, 1, 1, 32, T]
    encoder(features).sum().backward()
    optimizer.step()
    for name, value in encoder.named_buffers():
        if name in frozen:
            torch.testing.assert_close(value, frozen[name])
