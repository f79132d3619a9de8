"""Audio modality: ImageBind's features (golden), clip placement, resampling, both filterbanks, bad input, encoder."""

from __future__ import annotations

import dataclasses
import math
import struct
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import torch.nn.functional as F
import torchaudio

from av_media import write_av_audio
from conftest import shared_path
from omniembed.config import HeadConfig, LogitScaleConfig, TransformerConfig, from_dict, to_dict
from omniembed.convert.imagebind import imagebind_audio_config
from omniembed.errors import ConfigError, EmptyInputError, InputError, UnreadableInputError
from omniembed.modalities.audio import AudioConfig, AudioModality
from omniembed.model_config import ModelConfig
from omniembed.modalities.audio_features import (LOG_FLOOR, clip_ranges, kaldi_fbank, log_mel_to_model_input,
                                                 resample)
from omniembed.modalities.audio_io import NoAudioTrackError, SoundfileSource

RATE = 16000
PAD = 4.268 / 9.138  # a padded frame: 0 in log-mel units, normalised
FLOOR = (math.log(LOG_FLOOR) + 4.268) / 9.138  # a silent frame: Kaldi's log floor, normalised
BATCHED_MAX, BATCHED_MEAN = 2e-3, 2e-5  # the stated tolerance of the batched path vs Kaldi, model-input units


def audio(**overrides) -> AudioModality:
    return AudioModality(AudioConfig(**overrides))


def imagebind(exact: bool = True) -> AudioModality:
    return AudioModality(imagebind_audio_config(TransformerConfig(), HeadConfig(), LogitScaleConfig(), exact=exact))


def tone(seconds: float, rate: int = RATE, freq: float = 440.0, amp: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def write(path: Path, samples: np.ndarray, rate: int = RATE, subtype: str = "PCM_16") -> Path:
    sf.write(path, samples, rate, subtype=subtype)
    return path


def write_aac(path: Path, samples: np.ndarray, rate: int) -> Path:
    """[C, N] float32 → an AAC file (m4a/mp4 container) written with PyAV."""
    return write_av_audio(path, samples, rate)


# ---- ImageBind's features ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["tone_8k", "chirp_8k"])
def test_fbank_equals_imagebind_golden_features(name):
    from safetensors.torch import load_file

    folder = shared_path("fixtures", "imagebind-tiny")
    golden = load_file(str(folder / f"{name}_features.safetensors"))["audio_features"][0]  # [3, 1, 128, 204]
    features = imagebind(exact=True).features(folder / f"{name}.wav")
    assert features.shape == golden.shape == (3, 1, 128, 204)
    # Same operations, not the same bits: MKL picks FFT/GEMM kernels and reduction orders by CPU, so on a CPU other
    # than the golden's the normalised log-mels differ by up to ~1e-3 in near-silent bins (mean ~4e-6). The
    # reference's quirks this pins (clip placement, in-place mean over overlaps) move values by up to 1.1.
    torch.testing.assert_close(features, golden, atol=2e-3, rtol=0)
    assert (features - golden).abs().mean() < 2e-5


@pytest.mark.parametrize("name", ["tone_8k", "chirp_8k"])
def test_batched_path_is_within_tolerance_of_golden_features(name):
    from safetensors.torch import load_file

    folder = shared_path("fixtures", "imagebind-tiny")
    golden = load_file(str(folder / f"{name}_features.safetensors"))["audio_features"][0]
    diff = (imagebind(exact=False).features(folder / f"{name}.wav") - golden).abs()
    assert diff.max() <= BATCHED_MAX and diff.mean() <= BATCHED_MEAN


def test_clean_default_differs_from_imagebind_only_where_clips_overlap():
    """The chirp's clips overlap by 0.25 s: ImageBind's in-place mean removal leaves a step in clips 1 and 2."""
    folder = shared_path("fixtures", "imagebind-tiny")
    exact = imagebind(exact=True).features(folder / "chirp_8k.wav")
    clean = audio(resampler="torchaudio", fbank="kaldi").features(folder / "chirp_8k.wav")
    torch.testing.assert_close(clean[0], exact[0], atol=1e-4, rtol=0)  # clip 0 is read before any overlap
    assert (clean[1:] - exact[1:]).abs().max() > 0.5


def test_clip_positions_follow_imagebinds_sampler():
    # 5.5 s: starts k·(5.5 − 2)/2 = 0, 1.75, 3.5 s
    assert clip_ranges(88000, RATE, 3, 2.0) == [(0, 32000), (28000, 60000), (56000, 88000)]
    # 61 s, 5 clips: every 14.75 s; the last ends at the end
    assert clip_ranges(61 * RATE, RATE, 5, 2.0) == [(k * 236000, k * 236000 + 32000) for k in range(5)]
    # shorter than a clip: K copies of the whole file; one clip starts at 0
    assert clip_ranges(12345, RATE, 3, 2.0) == [(0, 12345)] * 3
    assert clip_ranges(50000, RATE, 1, 2.0) == [(0, 32000)]


def test_clips_are_cut_at_those_positions():
    """A file whose samples are their own index: each clip holds exactly its range (before mean removal)."""
    ramp = np.arange(88000, dtype=np.float32) / 88000
    clips = audio(mean_removal="none").preprocess(ramp)
    assert clips.lengths.tolist() == [32000, 32000, 32000]
    for k, (a, b) in enumerate([(0, 32000), (28000, 60000), (56000, 88000)]):
        torch.testing.assert_close(clips.waves[k], torch.from_numpy(ramp[a:b]))


# ---- resampling and windowed reading -----------------------------------------------------------------------------
@pytest.mark.parametrize("rate", [44100, 22050, 48000, 8000, 11025])
def test_polyphase_resampler_matches_torchaudio(rate):
    x = torch.randn(2, rate + 123, generator=torch.Generator().manual_seed(rate))
    expected = torchaudio.functional.resample(x, rate, RATE)
    got = resample(x, rate, RATE, "polyphase")
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=0)


@pytest.mark.parametrize("resampler", ["torchaudio", "polyphase"])
def test_windowed_reading_equals_resampling_the_whole_file(tmp_path, resampler):
    """20 s at 44.1 kHz: only the clip windows are read and resampled, yet they equal the whole file's."""
    rng = np.random.default_rng(1)
    samples = (0.2 * rng.standard_normal(20 * 44100)).astype(np.float32)
    path = write(tmp_path / "long.wav", samples, 44100, "FLOAT")
    clips = audio(resampler=resampler, mean_removal="none").prepare(path)
    whole = torchaudio.functional.resample(torch.from_numpy(samples)[None], 44100, RATE)[0]
    for k, (a, b) in enumerate(clip_ranges(whole.shape[0], RATE, 3, 2.0)):
        torch.testing.assert_close(clips.waves[k], whole[a:b], atol=1e-5 if resampler == "polyphase" else 1e-7,
                                   rtol=0)


def test_hour_long_file_is_streamed_with_bounded_memory(tmp_path, monkeypatch):
    """A 1 h 0 min 1 s wav (a sparse file): only the three 2 s clip windows are read."""
    n = 3601 * RATE
    path = tmp_path / "hour.wav"
    tones = [(tone(2.0, freq=300.0 * (k + 1)) * 32767).astype("<i2") for k in range(3)]
    with open(path, "wb") as f:  # PCM16 mono header, then a sparse zero body with a tone in each clip window
        f.write(b"RIFF" + struct.pack("<I", 36 + 2 * n) + b"WAVEfmt " +
                struct.pack("<IHHIIHH", 16, 1, 1, RATE, 2 * RATE, 2, 16) + b"data" + struct.pack("<I", 2 * n))
        f.truncate(44 + 2 * n)
        for (a, _), samples in zip(clip_ranges(n, RATE, 3, 2.0), tones):
            f.seek(44 + 2 * a)
            f.write(samples.tobytes())
    read = []
    original = SoundfileSource.read
    monkeypatch.setattr(SoundfileSource, "read", lambda self, a, b: (read.append(b - a), original(self, a, b))[1])
    tracemalloc.start()
    try:
        features = audio().features(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert sum(read) == 3 * 32000 and peak < 20e6  # all its samples as float32 would be 230 MB
    in_memory = np.concatenate(tones).astype(np.float32) / 32768  # 6 s: clips at 0, 2, 4 s hold the same tones
    torch.testing.assert_close(features, audio().features(in_memory))


# ---- both filterbanks --------------------------------------------------------------------------------------------
def test_batched_fbank_matches_kaldi_within_tolerance_on_mixed_lengths():
    gen = torch.Generator().manual_seed(0)
    lengths = [32000, 31999, 16000, 400, 1234, 40000, 32000, 20000, 5000, 32000, 640]  # incl. < 204 frames, > 204
    clips = [0.3 * torch.randn(n, generator=gen) + 0.01 for n in lengths]
    mod = audio()
    kaldi = mod.filterbank(clips, fbank="kaldi")
    batched = mod.filterbank(clips, fbank="batched")
    assert batched.shape == kaldi.shape == (len(lengths), 1, 128, 204)
    diff = (batched - kaldi).abs()
    assert diff.max() <= BATCHED_MAX and diff.mean() <= BATCHED_MEAN
    # 400 samples: one frame, the rest padding
    torch.testing.assert_close(batched[3, 0, :, 1:], torch.full_like(batched[3, 0, :, 1:], PAD))


def test_kaldi_path_is_torchaudios_fbank_transposed_padded_normalised():
    wave = torch.from_numpy(tone(1.0))
    rows = kaldi_fbank(wave, RATE, 128)  # [98, 128]
    expected = F.pad(rows.T, (0, 204 - rows.shape[0])).sub(-4.268).div(9.138)
    torch.testing.assert_close(audio(fbank="kaldi").filterbank([wave])[0, 0], expected)
    torch.testing.assert_close(log_mel_to_model_input(rows[None], torch.tensor([98]), 204, -4.268, 9.138)[0, 0],
                               expected)


# ---- bad and unusual input ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("fbank", ["batched", "kaldi"])
def test_silence_is_valid_and_gives_the_log_floor(tmp_path, fbank):
    features = audio(fbank=fbank).features(write(tmp_path / "silent.wav", np.zeros(RATE, np.float32)))
    frames = 1 + (RATE - 400) // 160  # 98
    torch.testing.assert_close(features[..., :frames], torch.full_like(features[..., :frames], FLOOR))
    torch.testing.assert_close(features[..., frames:], torch.full_like(features[..., frames:], PAD))


def test_shorter_than_one_frame_is_an_input_error(tmp_path):
    path = write(tmp_path / "click.wav", tone(0.01))
    with pytest.raises(InputError, match=r"click\.wav: audio is 10\.0 ms long, shorter than one 25 ms"):
        audio().prepare(path)


def test_one_frame_is_enough(tmp_path):
    features = audio().features(write(tmp_path / "blip.wav", tone(0.025)))
    torch.testing.assert_close(features[..., 1:], torch.full_like(features[..., 1:], PAD))
    assert (features[..., 0] - PAD).abs().min() > 0.01


def test_empty_file_is_an_empty_input_error(tmp_path):
    with pytest.raises(EmptyInputError, match=r"empty\.wav: audio has no samples"):
        audio().prepare(write(tmp_path / "empty.wav", np.zeros(0, np.float32)))


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_nan_or_inf_samples_are_an_input_error(tmp_path, bad):
    samples = tone(3.0)
    samples[RATE] = bad
    with pytest.raises(InputError, match=r"bad\.wav: audio contains NaN or Inf samples"):
        audio().prepare(write(tmp_path / "bad.wav", samples, subtype="FLOAT"))
    with pytest.raises(InputError, match="NaN or Inf"):
        audio().preprocess(samples)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_nan_or_inf_in_a_quiet_lead_in_is_an_input_error_with_trim_db(tmp_path, bad):
    samples = np.concatenate([np.zeros(RATE // 2, np.float32), tone(1.0)])
    samples[RATE // 10] = bad  # in the lead-in that trimming would cut
    with pytest.raises(InputError, match=r"bad\.wav: audio contains NaN or Inf samples"):
        audio(trim_db=30).prepare(write(tmp_path / "bad.wav", samples, subtype="FLOAT"))


def test_corrupt_file_and_unknown_codec_are_unreadable(tmp_path):
    garbage = tmp_path / "garbage.mp3"
    garbage.write_bytes(b"definitely not audio " * 50)
    with pytest.raises(UnreadableInputError, match=r"garbage\.mp3: unsupported or corrupt audio"):
        audio().prepare(garbage)
    odd = tmp_path / "odd_codec.wav"  # a well-formed RIFF header naming a codec no decoder knows (tag 0x5555)
    odd.write_bytes(b"RIFF" + struct.pack("<I", 36 + 800) + b"WAVEfmt " +
                    struct.pack("<IHHIIHH", 16, 0x5555, 1, RATE, 2 * RATE, 2, 16) + b"data" +
                    struct.pack("<I", 800) + bytes(800))
    with pytest.raises(UnreadableInputError, match=r"odd_codec\.wav: unsupported or corrupt audio"):
        audio().prepare(odd)


def test_video_without_audio_track_asked_as_audio(tmp_path):
    import av

    path = tmp_path / "silent_film.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        for i in range(5):
            frame = av.VideoFrame.from_ndarray(np.full((32, 32, 3), i * 40, np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    with pytest.raises(NoAudioTrackError, match=r"silent_film\.mp4: has no audio track"):
        audio().prepare(path)


# ---- formats, channels, raw input --------------------------------------------------------------------------------
def test_stereo_aac_is_read_with_both_channels_right(tmp_path):
    """PyAV decodes both channels (decord 0.6's AudioReader returns a wrong second channel here)."""
    left, right = tone(2.0, 44100, 440.0, 0.3), tone(2.0, 44100, 660.0, 0.1)
    path = write_aac(tmp_path / "stereo.m4a", np.stack([left, right]), 44100)
    clips = audio(sample_rate=44100, n_clips=1, channel_mix="first", mean_removal="none").prepare(path)
    np.testing.assert_allclose(clips.waves[0, 4000:80000].numpy(), left[4000:80000], atol=0.02)
    mixed = audio(sample_rate=44100, n_clips=1, mean_removal="none").prepare(path)
    np.testing.assert_allclose(mixed.waves[0, 4000:80000].numpy(), (left + right)[4000:80000] / 2, atol=0.02)


def test_channel_mix_first_or_mean(tmp_path):
    left, right = tone(3.0, freq=440.0), tone(3.0, freq=1000.0, amp=0.2)
    stereo = write(tmp_path / "stereo.wav", np.stack([left, right], axis=1), subtype="FLOAT")
    torch.testing.assert_close(audio(channel_mix="first").features(stereo), audio().features(left))
    torch.testing.assert_close(audio(channel_mix="mean").features(stereo), audio().features((left + right) / 2),
                               atol=1e-5, rtol=0)


def test_files_bytes_and_arrays_agree(tmp_path):
    samples = tone(4.0, 8000)
    path = write(tmp_path / "a.flac", samples, 8000)
    mod = audio()
    from_file = mod.features(path)
    decoded, _ = sf.read(path, dtype="float32")
    torch.testing.assert_close(mod.collate([mod.preprocess(mod.load_bytes(path.read_bytes(), ".flac"))])[0],
                               from_file)
    torch.testing.assert_close(mod.features((decoded, 8000)), from_file)
    torch.testing.assert_close(mod.features((torch.from_numpy(decoded)[:, None].numpy(), 8000)), from_file)  # [N, 1]
    at_16k = torchaudio.functional.resample(torch.from_numpy(decoded), 8000, RATE)
    torch.testing.assert_close(mod.features(at_16k), from_file, atol=1e-4, rtol=0)


def test_bad_config_values_are_config_errors():
    with pytest.raises(ConfigError, match="channel_mix"):
        audio(channel_mix="left")
    with pytest.raises(ConfigError, match="fbank"):
        audio(fbank="fast")
    with pytest.raises(ConfigError, match="n_clips"):
        audio(n_clips=0)


def test_config_round_trips_through_json():
    cfg = imagebind_audio_config(TransformerConfig(width=64, depth=1, heads=4, bias_kv=True), HeadConfig(),
                                 LogitScaleConfig(init=20.0, learnable=False))
    again = from_dict(AudioConfig, to_dict(cfg))
    assert again == cfg and again.channel_mix == "first" and again.mean_removal == "shared_buffer"
    model = ModelConfig(modalities={"image": _image_tiny(), "audio": cfg})
    assert ModelConfig.from_json(model.to_json()).modalities["audio"] == cfg


def _image_tiny():
    from omniembed.modalities.image import ImageModality

    return ImageModality.tiny_config()


# ---- encoder -----------------------------------------------------------------------------------------------------
def test_encoder_shapes_unit_norm_and_clip_mean(tmp_path):
    mod = AudioModality(AudioModality.tiny_config())
    torch.manual_seed(0)
    encoder = mod.build_encoder(32).eval()
    batch = mod.collate([mod.prepare(write(tmp_path / f"{i}.wav", tone(3.0 + i, freq=200.0 * (i + 1))))
                         for i in range(2)])
    assert batch.shape == (2, 3, 1, 128, 204)
    tokens = encoder.stem(batch[:, 0]).tokens
    assert tokens.shape == (2, 1 + 12 * 19, 64)
    with torch.no_grad():
        out = encoder(batch)
        per_clip = F.normalize(encoder.features(batch), dim=-1)
    assert out.shape == (2, 32)
    torch.testing.assert_close(out.norm(dim=-1), torch.ones(2))
    torch.testing.assert_close(out, F.normalize(per_clip.mean(dim=1), dim=-1))
    assert float(encoder.logit_scale) == pytest.approx(20.0)
    assert not any("log_scale" in n for n, _ in encoder.named_parameters())  # fixed, as ImageBind
    assert all(block.attn.bias_k is not None for block in encoder.trunk.transformer.blocks)


def test_stem_has_imagebinds_parts():
    """One bias-free Conv2d (kernel 16, stride 10), one LayerNorm, a CLS token and a 229-row position table."""
    stem = AudioModality(AudioModality.tiny_config()).build_encoder(32).stem
    convs = [m for m in stem.modules() if isinstance(m, torch.nn.Conv2d)]
    norms = [m for m in stem.modules() if isinstance(m, torch.nn.LayerNorm)]
    assert len(convs) == 1 and convs[0].kernel_size == (16, 16) and convs[0].stride == (10, 10)
    assert convs[0].bias is None and len(norms) == 1 and norms[0].eps == 1e-5
    assert stem.cls_token.shape == (1, 1, 64) and stem.pos_embed.shape == (1, 229, 64)


def test_encoder_reproduces_imagebinds_audio_outputs():
    """ImageBind's tiny random audio encoder, its weights placed by name: the reference outputs within 1e-4."""
    from safetensors.torch import load_file

    folder = shared_path("fixtures", "imagebind-tiny")
    state, io = load_file(str(folder / "model.safetensors")), load_file(str(folder / "io.safetensors"))
    cfg = imagebind_audio_config(TransformerConfig(width=64, depth=2, heads=4, drop_path=0.1, ln_eps=1e-6,
                                                   bias_kv=True), HeadConfig(pool="cls", norm_eps=1e-6),
                                 LogitScaleConfig(init=20.0, learnable=False))
    encoder = AudioModality(cfg).build_encoder(32).eval()
    pre, trunk = "modality_preprocessors.audio.", "modality_trunks.audio.blocks."
    names = {"stem.proj.weight": pre + "rgbt_stem.proj.weight", "stem.norm.weight": pre + "rgbt_stem.norm_layer.weight",
             "stem.norm.bias": pre + "rgbt_stem.norm_layer.bias", "stem.cls_token": pre + "cls_token",
             "stem.pos_embed": pre + "pos_embedding_helper.pos_embed",
             "head.head.norm.weight": "modality_heads.audio.0.weight",
             "head.head.norm.bias": "modality_heads.audio.0.bias",
             "head.head.proj.weight": "modality_heads.audio.2.weight",
             "postprocess.logit_scale.log_scale": "modality_postprocessors.audio.1.log_logit_scale"}
    ours = {"attn.qkv": "attn.in_proj_", "attn.proj": "attn.out_proj.", "norm1": "norm_1.", "norm2": "norm_2.",
            "mlp.fc1": "mlp.fc1.", "mlp.fc2": "mlp.fc2."}
    for i in range(2):
        for a, b in ours.items():
            for p in ("weight", "bias"):
                names[f"trunk.transformer.blocks.{i}.{a}.{p}"] = f"{trunk}{i}.{b}{p}"
        for p in ("bias_k", "bias_v"):
            names[f"trunk.transformer.blocks.{i}.attn.{p}"] = f"{trunk}{i}.attn.{p}"
    assert set(names) == set(encoder.state_dict())
    encoder.load_state_dict({k: state[v] for k, v in names.items()})
    with torch.no_grad():
        per_clip = encoder.clip_embeddings(io["input.audio"])  # [2, 3, 32] unit rows
        out = encoder(io["input.audio"])
    reference = io["output.audio"]  # the mean over clips of 20 × unit vectors
    torch.testing.assert_close(20.0 * per_clip.mean(dim=1), reference, atol=1e-4, rtol=0)
    torch.testing.assert_close(out, F.normalize(reference, dim=-1), atol=1e-5, rtol=0)


def test_a_timm_cnn_can_replace_the_spectrogram_transformer():
    import omniembed
    from omniembed.model_config import ModelConfig
    from omniembed.nn.timm_trunk import TimmConfig

    audio = dataclasses.replace(AudioModality.tiny_config(), n_mels=64, n_clips=2,
                                tower=TimmConfig(name="test_resnet"))
    model = omniembed.create(ModelConfig(embed_dim=16, anchor="audio", modalities={"audio": audio}))
    assert next(model.encoder("audio").trunk.model.parameters()).shape[1] == 1  # first conv takes 1 channel
    rows = model.embed([np.sin(np.arange(16000) / 10).astype(np.float32)], modality="audio")
    assert rows.shape == (1, 16) and np.isclose(np.linalg.norm(rows), 1, atol=1e-5)


def test_clip_feature_norm_makes_every_mel_bin_zero_mean_unit_variance_over_valid_frames():
    proc = AudioModality(dataclasses.replace(AudioModality.tiny_config(), feature_norm="clip", n_clips=1,
                                             clip_seconds=1.0, target_frames=100))
    noise = torch.randn(4000, generator=torch.Generator().manual_seed(0))  # 0.25 s: ~23 valid frames
    short = noise * torch.linspace(0.1, 1.0, 4000)  # broadband, so no mel bin sits on the log floor
    quiet, loud = proc.filterbank([short * 0.1]), proc.filterbank([short])
    valid = quiet[0, 0, :, :23]
    torch.testing.assert_close(valid.mean(-1), torch.zeros(valid.shape[0]), atol=1e-4, rtol=0)
    assert (quiet[0, 0, :, 30:] == 0).all()
    diff = (quiet - loud).abs()  # the level is gone (up to the log floor in the lowest, near-empty bins)
    assert diff.mean() < 1e-3 and diff.max() < 0.1


def test_unknown_feature_norm_is_a_config_error():
    with pytest.raises(ConfigError, match="feature_norm"):
        AudioModality(dataclasses.replace(AudioModality.tiny_config(), feature_norm="speaker"))


def test_a_tdnn_can_replace_the_spectrogram_transformer():
    import omniembed
    from omniembed.nn.tdnn import TdnnConfig, TdnnTrunk

    audio = dataclasses.replace(AudioModality.tiny_config(), n_mels=40, n_clips=2, feature_norm="clip",
                                tower=TdnnConfig(width=32))
    config = ModelConfig(embed_dim=16, anchor="audio", modalities={"audio": audio})
    assert ModelConfig.from_json(config.to_json()).modalities["audio"].tower == TdnnConfig(width=32)
    model = omniembed.create(config)
    assert isinstance(model.encoder("audio").trunk, TdnnTrunk)
    assert model.encoder("audio").trunk.layers[0].in_channels == 40  # the mel bins are its channels
    rows = model.embed([np.sin(np.arange(16000) / 10).astype(np.float32)], modality="audio")
    assert rows.shape == (1, 16) and np.isclose(np.linalg.norm(rows), 1, atol=1e-5)


def test_a_tdnn_pooling_valid_frames_ignores_how_much_padding_follows_the_speech():
    from omniembed.nn.tdnn import TdnnConfig, TdnnTrunk
    from omniembed.nn.tokens import Tokens

    torch.manual_seed(0)
    speech = torch.randn(2, 1, 8, 30)  # per-clip normalised frames: never 0 in every bin
    short, long = (torch.nn.functional.pad(speech, (0, pad)) for pad in (10, 70))  # padding is 0 in every bin
    pooled = {}
    for pool in ("all", "valid"):
        trunk = TdnnTrunk(TdnnConfig(width=16, pool=pool), n_mels=8).eval()
        pooled[pool] = [trunk(Tokens(x)).tokens for x in (short, long)]
    torch.testing.assert_close(pooled["valid"][0], pooled["valid"][1])
    assert (pooled["all"][0] - pooled["all"][1]).abs().max() > 1e-2  # the share of padding moved the mean
    with pytest.raises(ConfigError, match="audio.tower.pool 'valid'.*feature_norm 'clip', not 'global'"):
        audio(tower=TdnnConfig(pool="valid"))
    with pytest.raises(ConfigError, match=r"audio.tower.pool 'frames' is not one of \['all', 'valid'\]"):
        audio(tower=TdnnConfig(pool="frames"))
    with pytest.raises(ConfigError, match=r"tdnn.pool 'frames' is not one of \['all', 'valid'\]"):
        TdnnTrunk(TdnnConfig(pool="frames"), n_mels=8)  # built directly, without a model config


def test_only_the_patch_stem_needs_a_spectrogram_of_at_least_one_patch():
    from omniembed.nn.tdnn import TdnnConfig

    with pytest.raises(ConfigError, match="8 × 100 spectrogram is smaller than one 16-patch"):
        audio(n_mels=8, target_frames=100)
    import omniembed

    small = dataclasses.replace(AudioModality.tiny_config(), n_mels=8, tower=TdnnConfig(width=16))
    model = omniembed.create(ModelConfig(embed_dim=4, anchor="audio", modalities={"audio": small}))
    assert model.embed([np.sin(np.arange(16000) / 10).astype(np.float32)], modality="audio").shape == (1, 4)

def test_timm_and_tdnn_together_are_a_config_error():
    from omniembed.nn.tdnn import TdnnConfig

    with pytest.raises(ConfigError, match=r"modalities\.audio\.timm and modalities\.audio\.tdnn each choose the "
                                          r"encoder: set one modalities\.audio\.tower: \{kind: timm \| tdnn"):
        ModelConfig.from_dict({"modalities": {"image": {}, "audio": {"timm": {"name": "test_resnet"}, "tdnn": {}}}})
    with pytest.raises(ConfigError, match="audio.tower.kernels"):
        audio(tower=TdnnConfig(kernels=[2, 3, 3]))


def burst(lead: float, tail: float, rate: int = 8000, seed: int = 0) -> np.ndarray:
    """One fixed 0.4 s burst of broadband sound with ``lead`` and ``tail`` seconds of quiet room noise (``seed``'s,
    60 dB below it) around it."""
    sound = np.random.default_rng(99).normal(0, 0.3, int(0.4 * rate))
    wave = np.concatenate([np.zeros(int(lead * rate)), sound, np.zeros(int(tail * rate))])
    return (wave + np.random.default_rng(seed).normal(0, 3e-4, wave.shape)).astype(np.float32)


def test_trim_db_places_the_clip_at_the_sound_whatever_quiet_lead_in_and_tail_surround_it():
    trimmed = audio(sample_rate=8000, n_clips=1, clip_seconds=1.0, n_mels=40, target_frames=100, trim_db=30)
    short, long = (trimmed.preprocess((burst(lead, tail, seed=i), 8000)) for i, (lead, tail) in
                   enumerate([(0.05, 0.05), (0.7, 0.5)]))
    assert abs(int(short.lengths[0]) - int(long.lengths[0])) <= 80 and short.lengths[0] < 0.5 * 8000  # ± one shift
    features = [trimmed.collate([clips])[0, 0, 0] for clips in (short, long)]  # [n_mels, frames]
    n = min(int(short.lengths[0]), int(long.lengths[0])) // 80 - 2
    torch.testing.assert_close(features[0][:, :n], features[1][:, :n], rtol=0, atol=1e-2)
    whole = audio(sample_rate=8000, n_clips=1, clip_seconds=1.0, n_mels=40, target_frames=100)
    untrimmed = [whole.preprocess((burst(lead, tail), 8000)) for lead, tail in [(0.05, 0.05), (0.7, 0.5)]]
    assert int(untrimmed[1].lengths[0]) == 8000  # the first second: 0.7 s of room noise, then the sound
    apart = [whole.collate([clips])[0, 0, 0] for clips in untrimmed]
    assert (apart[0][:, :n] - apart[1][:, :n]).abs().max() > 1.0


def test_trim_db_keeps_silence_and_a_quiet_file_whole():
    trimmed = audio(sample_rate=8000, n_clips=1, clip_seconds=1.0, trim_db=30)
    assert int(trimmed.preprocess((np.zeros(4000, np.float32), 8000)).lengths[0]) == 4000
    hum = np.full(4000, 1e-3, np.float32)  # level all through: every frame is within 30 dB of the loudest
    assert int(trimmed.preprocess((hum, 8000)).lengths[0]) == 4000


def test_trim_db_must_be_positive():
    with pytest.raises(ConfigError, match="trim_db"):
        audio(trim_db=0)
