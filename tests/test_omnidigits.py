"""OmniDigits: every modality of a sample is decodable, labels are right, splits never share a source, builds are
deterministic, shards feed the pretraining loader, and the CLI and the offline fallback behave."""

from __future__ import annotations

import gzip
import hashlib
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from omniembed.cli import main as cli_main
from omniembed.datasets import CLASS_NAMES, PROMPT_TEMPLATES, build_omnidigits, load_manifest, load_split
from omniembed.datasets.omnidigits import ClassCycler, plan_split
from omniembed.datasets.omnidigits_pools import SourcePools
from omniembed.datasets.omnidigits_speech import ESPEAK_VOICES
from omniembed.datasets.omnidigits_sources import (FSDD_TEST_SPEAKERS, MNIST_TEST_START,
                                                   MissingToolError, fsdd_recordings, mnist_images)
from omniembed.errors import ConfigError, MissingInputError, UnreadableInputError
from omniembed.modalities.video_io import open_video
from omniembed.pretrain.config import DataConfig, DatasetConfig
from omniembed.pretrain.data import PairLoader, expand_shards

from conftest import shared_path

N_TRAIN, N_TEST = 40, 20
EXTENSIONS = ("png", "wav", "txt", "mp4", "ply", "cls", "src")


@pytest.fixture(scope="module")
def offline(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("omnidigits") / "offline"
    build_omnidigits(out, n_train=N_TRAIN, n_test=N_TEST, source="offline", workers=1)
    return out


@pytest.fixture(scope="module")
def shared(tmp_path_factory) -> Path:
    root = shared_path("data")
    shared_path("data", "mnist")
    shared_path("data", "fsdd")
    out = tmp_path_factory.mktemp("omnidigits") / "shared"
    build_omnidigits(out, n_train=N_TRAIN, n_test=N_TEST, source="shared", workers=1, shared_root=root)
    return out


@pytest.fixture(params=["offline", "shared"])
def build(request) -> Path:
    return request.getfixturevalue(request.param)


def file_hashes(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def ink_centroid(frame: np.ndarray) -> np.ndarray:
    grey = frame[..., 0].astype(np.float64)
    ys, xs = np.indices(grey.shape)
    return np.array([(ys * grey).sum(), (xs * grey).sum()]) / grey.sum()


# ---- contents ------------------------------------------------------------------------------------------------------
def test_build_writes_every_modality_of_every_sample_with_balanced_labels(build):
    manifest = load_manifest(build)
    assert manifest.counts == {"train": dict.fromkeys(manifest.modalities, N_TRAIN),
                               "test": dict.fromkeys(manifest.modalities, N_TEST)}
    assert manifest.class_names == list(CLASS_NAMES) and manifest.prompt_templates == list(PROMPT_TEMPLATES)
    assert manifest.skipped == []
    for split, n in (("train", N_TRAIN), ("test", N_TEST)):
        records = load_split(build, split)
        assert [r.key for r in records] == [f"{i:05d}" for i in range(n)]
        assert sorted(set(p.suffix[1:] for p in (build / split).iterdir())) == sorted(EXTENSIONS)
        labels = [r.label for r in records]
        assert np.bincount(labels, minlength=10).tolist() == [n // 10] * 10
        for r in records:
            assert int((build / split / f"{r.key}.cls").read_text()) == r.label
            assert r.paths["text"].read_text() == r.caption
            assert CLASS_NAMES[r.label] in r.caption or str(r.label) in r.caption
            assert all(path.is_file() for path in r.paths.values())


def test_files_embed_with_the_projects_own_modalities(build, tiny_model):
    records = load_split(build, "test")[:4]
    for modality in ("image", "audio", "text", "video", "pointcloud"):
        paths = [r.paths[modality] for r in records]
        if tiny_model.modality_of(paths[0]) is None:
            assert modality == "pointcloud"  # no point cloud modality registered yet: open3d checks it below
            continue
        vectors = tiny_model.embed(paths, modality=modality)
        assert vectors.shape == (4, tiny_model.embed_dim)
        assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    parts = tiny_model.embed([r.paths["video"] for r in records], modality="video", parts=True)
    assert np.isfinite(parts["audio"]).all()  # the sound track was found, decoded and embedded


def test_wav_holds_the_spoken_digit_at_8khz_from_either_source(build):
    for r in load_split(build, "train")[:5]:
        wave, rate = sf.read(r.paths["audio"])
        assert rate == 8000  # FSDD's rate; espeak-ng's speech is resampled to it
        assert wave.ndim == 1 and 0.1 < len(wave) / rate < 3.0 and np.abs(wave).max() > 0.05


def test_synthetic_speech_gets_noisy_silent_margins_and_real_recordings_are_kept_as_they_are():
    from omniembed.datasets.omnidigits_render import NOISE_GAIN, NOISE_SNR_DB, SILENCE_MARGIN_SECONDS, augment

    rate = 8000
    speech = (0.1 * np.sin(np.arange(4000) / 3.0)).astype(np.float32)  # half a second of a tone
    befores = []
    for seed in range(20):
        wave = augment(speech, np.random.default_rng(seed), rate)
        draws = np.random.default_rng(seed)  # the margins, gain and SNR augment drew, in its order
        before, after = (int(draws.uniform(*SILENCE_MARGIN_SECONDS) * rate) for _ in range(2))
        gain, snr_db = draws.uniform(*NOISE_GAIN), draws.uniform(*NOISE_SNR_DB)
        assert wave.dtype == np.float32 and len(wave) == before + len(speech) + after
        noise = wave - np.pad(gain * speech, (before, after))  # the speech sits between the margins
        speech_power = np.mean((gain * speech) ** 2)
        assert np.isclose(10 * np.log10(speech_power / np.var(noise)), snr_db, atol=0.1)
        assert (noise[:before] != 0).all() and (noise[before + len(speech):] != 0).all()  # noise, not silence
        befores.append(before)
    assert min(befores) < 0.05 * rate and max(befores) > 0.2 * rate  # the margins are drawn, not fixed


@pytest.mark.parametrize("alpha", [0.0, 1.0, 2.0])
def test_render_noise_has_unit_variance_and_its_power_falls_as_f_to_the_minus_alpha(alpha):
    from omniembed.datasets.omnidigits_render import coloured_noise

    noise = coloured_noise(1 << 16, alpha, np.random.default_rng(0))
    assert noise.shape == (1 << 16,) and np.isclose(noise.std(), 1.0)
    power = np.abs(np.fft.rfft(noise)) ** 2
    freqs = np.fft.rfftfreq(len(noise))
    octaves = [power[(freqs >= f) & (freqs < 2 * f)].mean() for f in (0.01, 0.02, 0.04, 0.08, 0.16)]
    slope = np.polyfit(np.log2([0.01, 0.02, 0.04, 0.08, 0.16]), np.log2(octaves), 1)[0]
    assert abs(slope + alpha) < 0.1  # the power per octave band falls by 2^alpha per octave


def test_coloured_render_noise_leaves_the_draws_after_it_as_white_noise_left_them():
    from omniembed.datasets.omnidigits_render import augment

    speech = (0.5 * np.sin(np.arange(4000) / 3.0)).astype(np.float32)
    rng, white = np.random.default_rng(3), np.random.default_rng(3)
    wave = augment(speech, rng, 8000)
    white.uniform(size=4)  # the margins, the gain and the SNR
    white.standard_normal(len(wave))  # white noise over all of it
    assert rng.uniform() == white.uniform()  # the video's and the cloud's draws that follow are unchanged


def test_video_moves_a_different_scan_and_carries_another_recording_losslessly(build):
    import av

    for r in load_split(build, "train")[:3]:
        assert r.sources["video_image"] != r.sources["image"] != r.sources["pointcloud_image"]
        assert r.sources["video_image"] != r.sources["pointcloud_image"]
        assert r.sources["video_audio"] != r.sources["audio"]
        video = open_video(r.paths["video"])
        frames = video.frames(list(range(video.n_frames)))
        assert frames.shape[1:] == (64, 64, 3) and 10 <= video.n_frames <= 25
        moved = max(np.linalg.norm(ink_centroid(f) - ink_centroid(frames[0])) for f in frames[1:])
        assert moved > 5  # pixels; the digit drifts 2.5-4 px per frame (bouncing, so it may come back)
        with av.open(str(r.paths["video"])) as container:
            track = container.streams.audio[0]
            assert track.codec_context.name == "flac" and track.rate == 8000
            wave = np.concatenate([f.to_ndarray().reshape(-1) for f in container.decode(track)])
            assert wave.dtype == np.int16 and len(wave) / track.rate > 0.1 and np.abs(wave).max() > 0.05 * 32767


def test_point_cloud_is_the_digit_extruded_into_a_thin_slab(build):
    import open3d as o3d

    for r in load_split(build, "test")[:3]:
        assert r.paths["pointcloud"].read_bytes().startswith(b"ply\nformat binary_little_endian 1.0\n")
        points = np.asarray(o3d.io.read_point_cloud(str(r.paths["pointcloud"])).points)
        assert points.shape == (1536, 3) and np.isfinite(points).all()
        spread = np.sqrt(np.linalg.eigvalsh(np.cov(points.T)))  # ascending: thickness, then the digit's extent
        assert spread[0] < 0.1 and spread[2] > 0.2


# ---- splits --------------------------------------------------------------------------------------------------------
def test_train_and_test_share_no_scan_recording_writer_or_speaker(build):
    manifest = load_manifest(build)
    ids = {split: [r.sources for r in load_split(build, split)] for split in ("train", "test")}
    used = {split: {v for s in rows for v in s.values()} for split, rows in ids.items()}
    assert not used["train"] & used["test"]
    audio = {split: {s[k] for s in rows for k in ("audio", "video_audio")} for split, rows in ids.items()}
    images = {split: {int(s[k].split(":")[1]) for s in rows for k in ("image", "video_image", "pointcloud_image")}
              for split, rows in ids.items()}
    if manifest.source == "shared":
        speakers = {split: {i.split("_")[1] for i in audio[split]} for split in audio}
        assert speakers["test"] <= set(FSDD_TEST_SPEAKERS) and not speakers["train"] & set(FSDD_TEST_SPEAKERS)
        assert max(images["train"]) < MNIST_TEST_START <= min(images["test"])
    else:
        voices = {split: {i.split(":")[1].split("/")[0] for i in audio[split]} for split in audio}
        assert voices["test"] <= set(ESPEAK_VOICES["test"]) and voices["train"] <= set(ESPEAK_VOICES["train"])
        assert max(images["train"]) < min(images["test"])


def test_class_cycler_uses_every_item_before_repeating_and_never_twice_in_a_sample():
    cycler = ClassCycler(np.arange(7), np.random.default_rng(0))
    takes = [cycler.take(3) for _ in range(70)]
    assert all(len(set(t)) == 3 for t in takes)
    counts = np.bincount([i for t in takes for i in t], minlength=7)
    assert counts.max() - counts.min() <= 1
    assert len(set([i for t in takes for i in t][:7])) == 7  # the first pass is one whole shuffle


# ---- determinism ---------------------------------------------------------------------------------------------------
def test_build_is_a_function_of_the_seed_whatever_the_worker_count(offline, tmp_path):
    again = tmp_path / "again"
    build_omnidigits(again, n_train=N_TRAIN, n_test=N_TEST, source="offline", workers=2)
    assert file_hashes(again) == file_hashes(offline)
    other = plan_split("train", N_TRAIN, SourcePools(), seed=1)
    assert [(p.label, p.caption) for p in other] != [(r.label, r.caption) for r in load_split(offline, "train")]


# ---- shards --------------------------------------------------------------------------------------------------------
def test_shards_hold_every_sample_and_feed_the_pretraining_loader(offline, tiny_model):
    index = offline / load_manifest(offline).shards["train"]
    members: dict[str, bytes] = {}
    for url in expand_shards([str(index)]):
        with tarfile.open(url) as tar:
            members.update((m.name, tar.extractfile(m).read()) for m in tar.getmembers())
    assert len(members) == N_TRAIN * len(EXTENSIONS)
    assert members["00007.mp4"] == (offline / "train" / "00007.mp4").read_bytes()
    pairs = [["image", "text"], ["image", "audio"], ["image", "video"]]
    config = DataConfig(datasets=[DatasetConfig(name="omnidigits", shards=[str(index)], pairs=pairs)],
                        batch_size=4, streams=1, shuffle_buffer=4, num_workers=0)
    loader = PairLoader(config, tiny_model.processors, seed=0)
    batch = next(loader)
    assert batch.size == 4 and set(batch.inputs) == {"image", "text", "audio", "video"}
    assert batch.inputs["image"].shape[0] == 4 and bool(batch.inputs["video"]["has_audio"].all())
    assert loader.skipped()["corrupt"] == 0 and loader.skipped()["incomplete"] == 0


# ---- sources: bad files, fallback, missing tools ------------------------------------------------------------------
def write_idx(path: Path, array: np.ndarray, magic: int) -> None:
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes(), compresslevel=1))


def test_blank_mnist_images_are_skipped_and_a_corrupt_file_is_named(tmp_path):
    pixels = np.zeros((10000, 28, 28), np.uint8)
    pixels[:, 8:20, 10:18] = 255
    pixels[[3, 6000]] = 0
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", pixels, 0x803)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.arange(10000) % 10, 0x801)
    pool = mnist_images(tmp_path)
    assert [s.source for s in pool.skipped] == ["mnist-t10k:00003", "mnist-t10k:06000"]
    assert len(pool.splits["train"]) == len(pool.splits["test"]) == 4999
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(b"\x00\x00\x08\x03" + bytes(20)))
    with pytest.raises(UnreadableInputError, match="t10k-labels-idx1-ubyte.gz: not an IDX file"):
        mnist_images(tmp_path)


def test_bad_fsdd_recordings_are_skipped_and_reported_never_used(tmp_path):
    folder = tmp_path / "fsdd" / "recordings"
    folder.mkdir(parents=True)
    t = np.arange(3000) / 8000
    for digit in range(10):
        for speaker in ("george", "theo"):
            for i in range(2):
                sf.write(folder / f"{digit}_{speaker}_{i}.wav", 0.3 * np.sin(2 * np.pi * (200 + 50 * digit) * t),
                         8000, subtype="PCM_16")
    (folder / "3_george_9.wav").write_bytes(b"RIFF not really a wave file")
    sf.write(folder / "4_george_9.wav", np.zeros(3000), 8000)
    sf.write(folder / "5_george_9.wav", 0.3 * np.sin(np.arange(6000)), 16000)
    sf.write(folder / "notes.wav", 0.3 * np.sin(np.arange(6000)), 8000)
    pool = fsdd_recordings(tmp_path / "fsdd")
    reasons = {Path(s.source).name: s.reason for s in pool.skipped}
    assert set(reasons) == {"3_george_9.wav", "4_george_9.wav", "5_george_9.wav", "notes.wav"}
    assert "cannot decode" in reasons["3_george_9.wav"] and "silent" in reasons["4_george_9.wav"]
    assert "16000 Hz" in reasons["5_george_9.wav"] and "name is not" in reasons["notes.wav"]
    out = tmp_path / "out"
    manifest = build_omnidigits(out, n_train=10, n_test=10, source="shared", modalities=("audio", "text"),
                                shared_root=tmp_path, workers=1)
    assert {Path(s["source"]).name for s in manifest.skipped} == set(reasons)
    used = {s for split in ("train", "test") for r in load_split(out, split) for s in r.sources.values()}
    assert used and not used & {"fsdd:3_george_9", "fsdd:4_george_9", "fsdd:5_george_9"}


def test_auto_falls_back_to_offline_and_shared_names_the_missing_folder(tmp_path):
    manifest = build_omnidigits(tmp_path / "a", n_train=10, n_test=10, modalities=("image", "text"),
                                shared_root=tmp_path / "nothing", workers=1)
    assert manifest.source == "offline" and manifest.sources == {"image": "sklearn-digits"}
    with pytest.raises(MissingInputError, match="nothing/mnist"):
        build_omnidigits(tmp_path / "b", n_train=10, n_test=10, source="shared", modalities=("image",),
                         shared_root=tmp_path / "nothing")


def test_without_a_data_root_auto_is_offline_and_shared_names_the_option_and_variable(tmp_path, monkeypatch):
    monkeypatch.delenv("OMNIEMBED_SHARED_DATA", raising=False)
    manifest = build_omnidigits(tmp_path / "a", n_train=10, n_test=10, modalities=("image", "text"), workers=1)
    assert manifest.source == "offline"
    with pytest.raises(MissingInputError, match=r"shared data root: none given: pass shared_root \(--shared-root\) "
                                                r"or set \$OMNIEMBED_SHARED_DATA"):
        build_omnidigits(tmp_path / "b", n_train=10, n_test=10, source="shared", modalities=("image",))


def test_the_data_root_comes_from_the_environment_when_not_given(tmp_path, monkeypatch):
    monkeypatch.setenv("OMNIEMBED_SHARED_DATA", str(tmp_path / "elsewhere"))
    with pytest.raises(MissingInputError, match="elsewhere/mnist"):
        build_omnidigits(tmp_path / "b", n_train=10, n_test=10, source="shared", modalities=("image",))


def test_offline_audio_without_espeak_says_how_to_install_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))  # shutil.which finds no espeak-ng
    with pytest.raises(MissingToolError, match="apt-get install espeak-ng"):
        build_omnidigits(tmp_path / "out", n_train=10, n_test=10, source="offline", modalities=("audio",))
    assert cli_main(["data", "omnidigits", str(tmp_path / "out"), "--source", "offline"]) == 2
    assert "apt-get install espeak-ng" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_a_folder_that_is_not_a_build_is_never_replaced(tmp_path):
    (tmp_path / "mine.txt").write_text("keep me")
    with pytest.raises(ConfigError, match="not an OmniDigits build"):
        build_omnidigits(tmp_path, n_train=10, n_test=10, source="offline", modalities=("text",))
    assert (tmp_path / "mine.txt").read_text() == "keep me"


# ---- command line --------------------------------------------------------------------------------------------------
def test_cli_builds_and_rebuilds_over_a_previous_build(tmp_path, capsys):
    out = tmp_path / "digits"
    argv = ["data", "omnidigits", str(out), "--train", "20", "--test", "10", "--source", "offline", "--seed", "3",
            "--modalities", "image,text,pointcloud", "--workers", "1"]
    assert cli_main(argv) == 0
    assert "train: 20 image, 20 text, 20 pointcloud" in capsys.readouterr().out
    first = file_hashes(out)
    assert cli_main(argv[:3] + ["--train", "10"] + argv[5:]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["seed"] == 3 and manifest["counts"]["train"] == {"image": 10, "text": 10, "pointcloud": 10}
    assert len(list((out / "train").glob("*.png"))) == 10 and file_hashes(out) != first
