"""Video modality: frame sampling by timestamp, the shared image encoder, the audio track, fusion, bad input."""

from __future__ import annotations

import dataclasses
import fractions
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from av_media import mux_audio, write_av_audio
from omniembed.errors import ConfigError, EmptyInputError, MissingExtraError, UnreadableInputError
from omniembed.modalities.audio import AudioModality
from omniembed.modalities.audio_io import PyAVSource
from omniembed.modalities.image import ImageModality
from omniembed.modalities.video import VideoConfig, VideoModality
from omniembed.modalities import video_io
from omniembed.modalities.video_io import clip_frame_indices, open_video, resolve_decoder

SIZE = (64, 48)


# ---- media made on the fly ---------------------------------------------------------------------------------------
def frame_value(i: int) -> int:
    """Frame i is a flat grey of this level, so a decoded frame tells which one it is."""
    return (i * 8) % 256


def write_video(path: Path, seconds: float = 3.0, fps: int = 10, audio: bool = True, pts_ms: list[int] | None = None,
                audio_rate: int = 22050) -> Path:
    """H.264 frames (grey level = frame index × 8) and, with ``audio``, a stereo AAC track (440 Hz | 660 Hz)."""
    import av

    n = len(pts_ms) if pts_ms is not None else int(seconds * fps)
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = *SIZE, "yuv420p"
        video.codec_context.time_base = fractions.Fraction(1, 1000)
        if audio:
            track = container.add_stream("aac", rate=audio_rate)
            track.layout = "stereo"
        for i in range(n):
            frame = av.VideoFrame.from_ndarray(np.full((SIZE[1], SIZE[0], 3), frame_value(i), np.uint8),
                                               format="rgb24")
            frame.pts = pts_ms[i] if pts_ms is not None else round(1000 * i / fps)
            frame.time_base = fractions.Fraction(1, 1000)
            for packet in video.encode(frame):
                container.mux(packet)
        for packet in video.encode():
            container.mux(packet)
        if audio:
            t = np.arange(int(seconds * audio_rate)) / audio_rate
            samples = np.stack([0.3 * np.sin(2 * np.pi * 440 * t), 0.1 * np.sin(2 * np.pi * 660 * t)])
            mux_audio(container, track, samples.astype(np.float32), audio_rate)
    return path


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("videos")
    files = {
        "av": write_video(d / "with_audio.mp4"),
        "mute": write_video(d / "mute.mp4", audio=False),
        "mute2": write_video(d / "mute2.mp4", seconds=2.0, audio=False),
        "short": write_video(d / "short.mp4", seconds=0.5, audio=False),
        # variable frame rate: 20 frames 50 ms apart, then 10 frames 200 ms apart (10 fps on average)
        "vfr": write_video(d / "vfr.mp4", audio=False,
                           pts_ms=[50 * i for i in range(20)] + [1000 + 200 * j for j in range(10)]),
    }
    files["garbage"] = d / "garbage.mp4"
    files["garbage"].write_bytes(b"not a video at all" * 100)
    data = files["av"].read_bytes()
    files["truncated"] = d / "truncated.mp4"
    files["truncated"].write_bytes(data[: len(data) // 3])
    files["audio_only"] = _audio_only(d / "audio_only.mp4")
    files["zero_frames"] = _zero_frame_stream(d / "zero_frames.mkv")
    return files


def _audio_only(path: Path) -> Path:
    samples = (0.2 * np.sin(np.arange(16000) / 16000 * 2 * np.pi * 300)).astype(np.float32)[None]
    return write_av_audio(path, samples, 16000)


def _zero_frame_stream(path: Path) -> Path:
    """A Matroska file with an H.264 stream that holds no frame (and an audio track)."""
    import av

    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=10)
        video.width, video.height, video.pix_fmt = *SIZE, "yuv420p"
        track = container.add_stream("aac", rate=16000)
        track.layout = "mono"
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate, frame.pts = 16000, 0
        for packet in list(track.encode(frame)) + list(track.encode()) + list(video.encode()):
            container.mux(packet)
    return path


@pytest.fixture(params=["decord", "pyav"])
def decoder(request) -> str:
    """Every test reading files runs with both frame decoders (decord only where it is installed)."""
    if request.param == "decord":
        pytest.importorskip("decord")
    return request.param


# ---- the wiring the model does (OmniEmbedModel calls VideoModality.link) -----------------------------------------
def build(temporal_kernel: int = 2, **video) -> tuple[dict, nn.ModuleDict]:
    torch.manual_seed(0)
    processors = {
        "image": ImageModality(dataclasses.replace(ImageModality.tiny_config(), temporal_kernel=temporal_kernel)),
        "audio": AudioModality(AudioModality.tiny_config()),
        "video": VideoModality(dataclasses.replace(VideoModality.tiny_config(), **video)),
    }
    encoders = nn.ModuleDict({name: proc.build_encoder(32) for name, proc in processors.items()}).eval()
    processors["video"].link(processors, encoders)
    return processors, encoders


def embed_parts(processors, encoders, paths) -> dict[str, torch.Tensor]:
    batch = processors["video"].collate([processors["video"].prepare(p) for p in paths])
    with torch.no_grad():
        return encoders["video"].parts(batch)


# ---- frame sampling ----------------------------------------------------------------------------------------------
def test_clip_frame_positions():
    ts = np.stack([np.arange(30) / 10, np.arange(1, 31) / 10], axis=1)  # 3 s at 10 fps
    # 2 clips of 2 s at 0 and 1 s; frames floor(linspace) over the frames starting in each clip
    assert clip_frame_indices(ts, 2, 2.0, 2) == [[0, 19], [10, 29]]
    # 5 clips every 0.25 s, 3 frames each
    assert clip_frame_indices(ts, 5, 2.0, 3) == [[0, 9, 19], [3, 12, 22], [5, 14, 24], [8, 17, 27], [10, 19, 29]]


def test_shorter_than_one_clip_gives_clips_over_the_whole_video():
    ts = np.stack([np.arange(5) / 10, np.arange(1, 6) / 10], axis=1)  # 0.5 s
    assert clip_frame_indices(ts, 3, 2.0, 2) == [[0, 4]] * 3
    one_frame = np.array([[0.0, 0.04]])
    assert clip_frame_indices(one_frame, 2, 2.0, 2) == [[0, 0], [0, 0]]


def test_decoded_frames_are_the_sampled_ones(videos, decoder):
    processors, _ = build(decoder=decoder, temporal_kernel=1)
    video = processors["video"]
    clip = video.load(videos["av"])
    picked = [i for c in clip_frame_indices(clip.timestamps, 2, 2.0, 2) for i in c]
    assert picked == [0, 19, 10, 29]
    levels = clip.frames(picked)[:, 10, 10, 0].astype(int)
    np.testing.assert_allclose(levels, [frame_value(i) for i in picked], atol=6)  # H.264 is lossy


def test_variable_frame_rate_is_sampled_by_timestamp(videos, decoder):
    """Frames every 50 ms for 1 s, then every 200 ms: clip 2 starts at duration − 2 s ≈ 0.85 s, where index ×
    average rate (≈ 10 fps → frame 8) would give the frame shown at 0.4 s."""
    processors, _ = build(decoder=decoder, temporal_kernel=1)
    clip = processors["video"].load(videos["vfr"])
    starts = clip.timestamps[:, 0]
    np.testing.assert_allclose(starts[[0, 1, 19, 20, 21, 29]], [0.0, 0.05, 0.95, 1.0, 1.2, 2.8], atol=1e-3)
    indices = clip_frame_indices(clip.timestamps, 2, 2.0, 2)
    second_start = clip.duration - 2.0  # clip 2 covers [duration − 2, duration)
    first = indices[1][0]
    assert second_start - 1e-6 <= starts[first] < second_start + 0.06
    naive = int(second_start * clip.n_frames / clip.duration)
    assert abs(starts[naive] - second_start) > 0.3
    assert indices == [[0, 24], [first, 29]]  # clip 1 [0, 2): frames 0 … 24 (1.8 s)
    levels = clip.frames([i for c in indices for i in c])[:, 10, 10, 0].astype(int)
    np.testing.assert_allclose(levels, [frame_value(i) for c in indices for i in c], atol=6)


def test_decord_and_pyav_give_the_same_frames_and_start_times(videos):
    pytest.importorskip("decord")
    for key in ("av", "vfr"):
        by_decord, by_pyav = open_video(videos[key], "decord"), open_video(videos[key], "pyav")
        assert by_pyav.n_frames == by_decord.n_frames == 30
        np.testing.assert_allclose(by_pyav.timestamps[:, 0], by_decord.timestamps[:, 0], atol=1e-6)
        every = list(range(30))
        np.testing.assert_array_equal(by_pyav.frames(every), by_decord.frames(every))


def test_choosing_decord_leaves_pyav_able_to_encode_webm(tmp_path):
    pytest.importorskip("decord")
    script = f"""
import fractions, numpy as np
from omniembed.modalities.video_io import resolve_decoder
assert resolve_decoder("auto") == "decord"
import av
with av.open({str(tmp_path / "a.webm")!r}, "w", format="webm") as container:
    stream = container.add_stream("libvpx", rate=10)
    stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
    frame = av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), format="rgb24")
    frame.pts, frame.time_base = 0, fractions.Fraction(1, 10)
    for packet in [*stream.encode(frame), *stream.encode()]:
        container.mux(packet)
"""
    # a fresh process: which FFmpeg libraries are loaded first is decided once per process
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    assert (tmp_path / "a.webm").stat().st_size > 0


def test_pyav_seeks_to_the_keyframe_before_each_wanted_frame(tmp_path):
    """300 frames with a keyframe every 12 and B-frames: frames picked out of order, repeated and across groups of
    pictures are the ones a full sequential decode gives."""
    import av

    path = tmp_path / "gops.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25, options={"g": "12", "bf": "2"})
        stream.width, stream.height, stream.pix_fmt = *SIZE, "yuv420p"
        for i in range(300):
            frame = av.VideoFrame.from_ndarray(np.full((SIZE[1], SIZE[0], 3), frame_value(i), np.uint8), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    video = open_video(path, "pyav")
    assert video.n_frames == 300 and video.reader.keyframes.sum() >= 25  # every 12th, and at scene cuts
    np.testing.assert_allclose(video.timestamps[[0, 1, 299], 0], [0.0, 0.04, 11.96], atol=1e-9)
    np.testing.assert_allclose(video.duration, 12.0, atol=1e-9)
    picks = [250, 3, 3, 140, 11, 12, 299, 0]
    levels = video.frames(picks)[:, 10, 10, 0].astype(int)
    np.testing.assert_allclose(levels, [frame_value(i) for i in picks], atol=6)


def test_auto_decoder_is_pyav_without_decord_and_decord_names_its_extra(videos, monkeypatch):
    monkeypatch.setitem(sys.modules, "decord", None)  # as if not installed
    video_io._decord.cache_clear()
    try:
        assert resolve_decoder("auto") == "pyav"
        assert open_video(videos["av"]).reader.__class__.__name__ == "PyAVFrames"
        with pytest.raises(MissingExtraError, match=r"pip install 'omniembed\[video\]'"):
            open_video(videos["av"], "decord")
    finally:
        video_io._decord.cache_clear()
    with pytest.raises(ConfigError, match="video.decoder 'ffmpeg' is not one of"):
        VideoModality(VideoConfig(decoder="ffmpeg"))


# ---- frames through the image encoder ----------------------------------------------------------------------------
def test_a_still_video_embeds_like_the_image(videos):
    """An image is a 2-frame clip by repetition: a video of one repeated picture has the picture's embedding."""
    processors, encoders = build(temporal_kernel=2)
    picture = torch.from_numpy(np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sample = processors["video"].preprocess((picture[None].expand(30, -1, -1, -1).numpy(), 10.0))
    assert sample.frames.shape == (2, 3, 2, 64, 64)  # 2 clips × one 2-frame view
    with torch.no_grad():
        from_video = encoders["video"].parts(processors["video"].collate([sample]))["frames"]
        from_image = encoders["image"](processors["image"].preprocess(picture.permute(2, 0, 1))[None])
    torch.testing.assert_close(from_video, from_image, atol=1e-5, rtol=0)


def test_frames_use_the_image_transform_and_temporal_kernel(videos, decoder):
    processors, encoders = build(decoder=decoder, temporal_kernel=2, n_clips=3, frames_per_clip=4)
    sample = processors["video"].prepare(videos["av"])
    assert sample.frames.shape == (6, 3, 2, 64, 64)  # 3 clips × 4 frames / kernel 2
    clip = processors["video"].load(videos["av"])
    flat = [i for c in clip_frame_indices(clip.timestamps, 3, 2.0, 4) for i in c]
    expected = processors["image"].transform(torch.from_numpy(clip.frames(flat)).permute(0, 3, 1, 2))
    torch.testing.assert_close(sample.frames.transpose(1, 2).reshape(12, 3, 64, 64), expected)
    per_frame = build(decoder=decoder, temporal_kernel=1)[0]["video"].prepare(videos["av"])
    assert per_frame.frames.shape == (4, 3, 1, 64, 64)  # tiny: 2 clips × 2 frames, each frame an image


def test_three_spatial_crops_as_imagebind(videos):
    processors, _ = build(spatial_crops=3)
    assert processors["video"].prepare(videos["av"]).frames.shape == (6, 3, 2, 64, 64)  # 3 crops × 2 clips


def test_video_encoder_shares_the_image_and_audio_encoders(videos):
    processors, encoders = build()
    assert len(encoders["video"].state_dict()) == 0 and not list(encoders["video"].parameters())
    batch = processors["video"].collate([processors["video"].prepare(videos["av"])])
    encoders["video"](batch).sum().backward()
    assert encoders["image"].stem.proj.weight.grad is not None and encoders["audio"].stem.proj.weight.grad is not None
    assert encoders["video"].logit_scale.item() == encoders["image"].logit_scale.item()


# ---- audio track and fusion --------------------------------------------------------------------------------------
def test_fusion_is_the_normalised_sum_of_unit_parts(videos):
    processors, encoders = build()
    parts = embed_parts(processors, encoders, [videos["av"]])
    torch.testing.assert_close(parts["video"], F.normalize(parts["frames"] + parts["audio"], dim=-1))
    for key in ("video", "frames", "audio"):
        torch.testing.assert_close(parts[key].norm(dim=-1), torch.ones(1))
    # the audio part is the audio modality's embedding of the track
    track = processors["audio"].clips(PyAVSource(videos["av"], "track"))
    with torch.no_grad():
        alone = encoders["audio"](processors["audio"].collate([track]))
    torch.testing.assert_close(parts["audio"], alone)
    weighted = build(frames_weight=1.0, audio_weight=0.5)
    parts_w = embed_parts(*weighted, [videos["av"]])
    torch.testing.assert_close(parts_w["video"], F.normalize(parts["frames"] + 0.5 * parts["audio"], dim=-1))


def test_fusion_frames_ignores_the_audio_track(videos):
    processors, encoders = build(fusion="frames")
    sample = processors["video"].prepare(videos["av"])
    assert sample.audio is None and processors["video"].audio_proc is None
    parts = embed_parts(processors, encoders, [videos["av"]])
    torch.testing.assert_close(parts["video"], parts["frames"])


def test_no_audio_track_embeds_frames_only_with_one_warning(videos):
    processors, encoders = build()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        parts = embed_parts(processors, encoders, [videos["mute"], videos["av"], videos["mute2"]])
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1 and "mute.mp4: no audio track, embedding the frames alone" in messages[0]
    torch.testing.assert_close(parts["video"][[0, 2]], parts["frames"][[0, 2]])
    assert torch.isnan(parts["audio"][[0, 2]]).all() and torch.isfinite(parts["audio"][1]).all()
    torch.testing.assert_close(parts["video"][1], F.normalize(parts["frames"][1] + parts["audio"][1], dim=-1))


# ---- bad input ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("key", ["audio_only", "zero_frames"])
def test_zero_frames_is_an_empty_input_error(videos, decoder, key):
    processors, _ = build(decoder=decoder)
    with pytest.raises(EmptyInputError, match=rf"{videos[key].name}: video has no frames"):
        processors["video"].prepare(videos[key])


@pytest.mark.parametrize("key", ["garbage", "truncated"])
def test_corrupt_container_is_unreadable(videos, decoder, key):
    processors, _ = build(decoder=decoder)
    with pytest.raises(UnreadableInputError, match=rf"{videos[key].name}: cannot decode video"):
        processors["video"].prepare(videos[key])


def test_video_shorter_than_one_clip_embeds(videos, decoder):
    processors, encoders = build(decoder=decoder)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        parts = embed_parts(processors, encoders, [videos["short"]])
    assert torch.isfinite(parts["video"]).all()
    clip = processors["video"].load(videos["short"])
    assert clip.n_frames == 5 and clip_frame_indices(clip.timestamps, 2, 2.0, 2) == [[0, 4], [0, 4]]


def test_linking_checks_the_shared_modalities():
    image = ImageModality(ImageModality.tiny_config())
    video = VideoModality(VideoModality.tiny_config())
    with pytest.raises(ConfigError, match="'image' image modality, which the model lacks"):
        video.link({"video": video}, nn.ModuleDict())
    with pytest.raises(ConfigError, match="fusion 'sum' embeds the audio track with the 'audio' modality"):
        video.link({"video": video, "image": image}, nn.ModuleDict())
    odd = VideoModality(VideoConfig(frames_per_clip=3))
    with pytest.raises(ConfigError, match="frames_per_clip 3 is not a multiple of the image stem's temporal kernel 2"):
        build(frames_per_clip=3)
    with pytest.raises(ConfigError, match="not linked"):
        odd.preprocess((np.zeros((4, 8, 8, 3), np.uint8), 10.0))
    with pytest.raises(ConfigError, match="fusion"):
        VideoModality(VideoConfig(fusion="concat"))


def test_thumbnail_is_the_middle_frame(videos, decoder):
    processors, _ = build(decoder=decoder)
    thumb = processors["video"].thumbnail(videos["av"], size=32)
    assert thumb.shape == (32, 32, 3) and thumb.dtype == np.uint8
    assert abs(int(thumb[16, 16, 0]) - frame_value(15)) <= 6


def test_model_embeds_audio_and_video_files(videos, tmp_path):
    """Through ``model.embed`` once the core builds audio/video and calls ``Modality.link``."""
    import soundfile as sf

    import omniembed

    model = omniembed.create("omni-tiny", seed=0)
    if "video" not in model.modalities or model.encoder("video")._shared["frames"] is None:
        pytest.skip("the core does not link the video modality yet (OmniEmbedModel → VideoModality.link)")
    wav = tmp_path / "tone.wav"
    sf.write(wav, (0.3 * np.sin(np.arange(48000) / 16000 * 2 * np.pi * 440)).astype(np.float32), 16000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rows = model.embed([str(wav), str(videos["av"]), str(videos["mute"])])
    assert rows.shape == (3, model.embed_dim)
    np.testing.assert_allclose(np.linalg.norm(rows, axis=1), 1.0, atol=1e-5)


# ---- through the public API ----------------------------------------------------------------------------------------
def test_model_embeds_video_files_and_returns_their_parts(videos, tiny_model):
    paths = [videos["av"], videos["mute"]]
    fused = tiny_model.embed(paths)
    parts = tiny_model.embed(paths, parts=True)
    assert set(parts) == {"video", "frames", "audio"}
    np.testing.assert_allclose(parts["video"], fused, atol=1e-6)
    assert np.isfinite(parts["audio"][0]).all() and np.isnan(parts["audio"][1]).all()
    np.testing.assert_allclose(parts["video"][1], parts["frames"][1], atol=1e-6)


def test_bf16_parts_stay_close_to_fp32_unit_rows_and_keep_the_missing_part_nan(videos, tiny_model):
    paths = [videos["av"], videos["mute"]]
    fp32 = tiny_model.embed(paths, parts=True)
    bf16 = tiny_model.embed(paths, parts=True, precision="bf16")  # the encoder copy with weights cast once
    for name in ("video", "frames"):
        np.testing.assert_allclose(np.linalg.norm(bf16[name], axis=1), 1.0, atol=1e-6)
        assert (bf16[name] * fp32[name]).sum(axis=1).min() > 0.999, name
    assert (bf16["audio"][0] * fp32["audio"][0]).sum() > 0.999
    assert np.isnan(bf16["audio"][1]).all()


def test_parts_of_an_encoder_without_parts_is_a_config_error(tiny_model):
    with pytest.raises(ConfigError, match="no parts"):
        tiny_model.embed(["a spoken seven"], parts=True)
