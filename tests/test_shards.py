"""Shards and the training data pipeline: make_shards, world-size-independent batches, resume, corrupt samples,
packing a worker's share, the decoded-file cache."""

from __future__ import annotations

import csv
import hashlib
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import omniembed
from omniembed.datasets.shards import make_shards, samples_from_folder
from omniembed.errors import ConfigError
from omniembed.modalities.audio import AudioClips
from omniembed.pretrain import data as pretrain_data
from omniembed.pretrain.config import DataConfig, DatasetConfig, load_config
from omniembed.pretrain.data import PairLoader, SampleStream, StreamState, dataset_for_step, expand_shards
from omniembed.pretrain.decoded_cache import DecodedCache
from omniembed.pretrain.tensor_pack import pack, unpack

REPO = Path(__file__).resolve().parents[1]
COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220), "yellow": (230, 220, 20),
           "purple": (140, 30, 160), "white": (245, 245, 245), "black": (10, 10, 10), "orange": (250, 140, 0)}
SHAPES = ("square", "stripe")

def shards_command(argv: list[str]) -> int:
    """``omniembed data shards ARGV`` (the command line over omniembed.datasets.shards)."""
    from omniembed import cli

    return cli.main(["data", "shards", *argv])


def write_pairs(folder: Path, n: int, corrupt: int = 0, size: int = 40) -> Path:
    """``n`` PNG images of coloured shapes with captions naming them; ``corrupt`` of them truncated PNGs."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        colour = list(COLOURS)[i % len(COLOURS)]
        shape = SHAPES[(i // len(COLOURS)) % len(SHAPES)]
        pixels = np.full((size, size, 3), 128, np.uint8)
        if shape == "square":
            pixels[8:-8, 8:-8] = COLOURS[colour]
        else:
            pixels[:, size // 3: 2 * size // 3] = COLOURS[colour]
        pixels = np.clip(pixels + rng.integers(-8, 8, pixels.shape), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"pair{i:03d}.png")
        (folder / f"pair{i:03d}.txt").write_text(f"a {colour} {shape}")
    for i in range(corrupt):
        path = folder / f"pair{i:03d}.png"
        path.write_bytes(path.read_bytes()[:60])  # header survives, pixel data does not
    return folder


def make_pair_shards(tmp_path: Path, n: int = 32, corrupt: int = 0, maxcount: int = 6) -> Path:
    """Shards of ``n`` image–caption pairs; returns the shard index (shards.json)."""
    pairs = write_pairs(tmp_path / "pairs", n, corrupt)
    make_shards(samples_from_folder(pairs), tmp_path / "shards", maxcount=maxcount)
    return tmp_path / "shards" / "shards.json"


TINY = {"embed_dim": 16, "anchor": "image", "modalities": {
    "image": {"image_size": 32, "patch_size": 16, "trunk": {"width": 32, "depth": 1, "heads": 2, "pre_norm": True}},
    "text": {"trunk": {"width": 32, "depth": 1, "heads": 2, "causal": True}}}}


@pytest.fixture(scope="module")
def processors():
    return omniembed.create(TINY, seed=0).processors


def data_config(index: Path, workers: int = 0, streams: int = 4, batch: int = 8, buffer: int = 5,
                cache_mb: int = 0) -> DataConfig:
    ds = DatasetConfig(name="shapes", shards=[str(index)], pairs=[["image", "text"]])
    return DataConfig(datasets=[ds], batch_size=batch, streams=streams, shuffle_buffer=buffer, num_workers=workers,
                      decoded_cache_mb=cache_mb)


def global_batches(config, processors, world: int, steps: int, start: int = 0, state=None):
    """The images of each step's global batch (ranks concatenated in rank order), and the loaders."""
    loaders = [PairLoader(config, processors, seed=3, rank=r, world=world, start_step=start, state=state)
               for r in range(world)]
    batches = []
    for _ in range(steps):
        parts = [next(loader) for loader in loaders]
        assert len({p.step for p in parts}) == 1
        batches.append(torch.cat([p.inputs["image"] for p in parts]))
    return batches, loaders


# ---- make_shards ---------------------------------------------------------------------------------------------
def test_make_shards_from_folder_packs_every_pair_with_its_caption(tmp_path):
    index = make_pair_shards(tmp_path, n=14, maxcount=6)
    meta = json.loads(index.read_text())
    assert [s["nsamples"] for s in meta["shardlist"]] == [6, 6, 2]
    members = {}
    for shard in expand_shards([str(index)]):
        with tarfile.open(shard) as tar:
            for m in tar.getmembers():
                members[m.name] = tar.extractfile(m).read()
    assert len(members) == 28
    assert members["pair003.txt"] == b"a yellow square"
    assert members["pair003.png"] == (tmp_path / "pairs" / "pair003.png").read_bytes()


@pytest.mark.parametrize("kind", ["csv", "jsonl"])
def test_make_shards_from_manifest_stores_inline_captions_and_files(tmp_path, kind):
    pairs = write_pairs(tmp_path / "pairs", 3)
    rows = [{"image": f"pairs/pair{i:03d}.png", "caption": f"caption {i}"} for i in range(3)]
    manifest = tmp_path / f"manifest.{kind}"
    if kind == "csv":
        with open(manifest, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=["image", "caption"])
            writer.writeheader()
            writer.writerows(rows)
    else:
        manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert shards_command([str(manifest), str(tmp_path / "out"), "--no-shuffle"]) == 0
    with tarfile.open(tmp_path / "out" / "shard-000000.tar") as tar:
        names = tar.getnames()
        assert names == ["0.png", "0.txt", "1.png", "1.txt", "2.png", "2.txt"]
        assert tar.extractfile("2.txt").read() == b"caption 2"
        assert tar.extractfile("1.png").read() == (pairs / "pair001.png").read_bytes()


def test_make_shards_names_a_missing_file_in_the_manifest(tmp_path, capsys):
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps({"image": "nope.png", "caption": "x"}) + "\n")
    assert shards_command([str(manifest), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("omniembed data: error: ") and f"{manifest}: row 1, column 'image'" in err


def test_shards_command_names_an_empty_or_missing_source(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert shards_command([str(tmp_path / "empty"), str(tmp_path / "out")]) == 2
    assert f"{tmp_path / 'empty'}: no samples" in capsys.readouterr().err
    assert shards_command([str(tmp_path / "nope.csv"), str(tmp_path / "out")]) == 2
    assert f"{tmp_path / 'nope.csv'}: no such folder or manifest" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


# ---- streams and loaders -------------------------------------------------------------------------------------
def test_global_batch_is_the_same_for_any_process_and_worker_count(tmp_path, processors):
    index = make_pair_shards(tmp_path)
    one, _ = global_batches(data_config(index), processors, world=1, steps=5)
    two, _ = global_batches(data_config(index), processors, world=2, steps=5)
    two_workers, _ = global_batches(data_config(index, workers=2), processors, world=2, steps=2)
    for a, b in zip(one, two):
        assert torch.equal(a, b)
    for a, b in zip(one, two_workers):
        assert torch.equal(a, b)
    assert not torch.equal(one[0], one[1])


def test_restored_loader_continues_with_the_same_batches(tmp_path, processors):
    index = make_pair_shards(tmp_path)
    config = data_config(index)
    straight, _ = global_batches(config, processors, world=2, steps=7)
    _, loaders = global_batches(config, processors, world=2, steps=3)
    state = {k: v for loader in loaders for k, v in loader.state_dict().items()}
    assert len(state) == 4 and all(s["emitted"] == 6 for s in state.values())
    resumed, _ = global_batches(config, processors, world=1, steps=4, start=3, state=state)
    for a, b in zip(straight[3:], resumed):
        assert torch.equal(a, b)


def test_stream_resamples_shards_forever_and_shuffles(tmp_path):
    index = make_pair_shards(tmp_path, n=12, maxcount=4)
    stream = SampleStream(expand_shards([str(index)]), seed="s", buffer_size=4)
    keys = [next(stream)["__key__"] for _ in range(60)]
    assert len(set(keys)) == 12  # every sample reached, well past one pass
    assert keys[:12] != sorted(keys[:12])
    state = stream.state()
    again = SampleStream(expand_shards([str(index)]), seed="s", buffer_size=4, state=StreamState(**vars(state)))
    assert [next(again)["__key__"] for _ in range(10)] == [next(stream)["__key__"] for _ in range(10)]


def shards_read_by_stream(loader: PairLoader, steps: int, streams: int) -> list[set[str]]:
    """The shard files each stream's samples came from, over ``steps`` batches (a stream's rows are contiguous)."""
    seen: list[set[str]] = [set() for _ in range(streams)]
    for _ in range(steps):
        keys = next(loader).keys
        per = len(keys) // streams
        for i, key in enumerate(keys):
            seen[i // per].add(key.split(":")[0])
    return seen


def test_streams_read_disjoint_shards_so_each_worker_decodes_its_own_share(tmp_path, processors):
    index = make_pair_shards(tmp_path, n=32, maxcount=4)  # 8 shards
    seen = shards_read_by_stream(PairLoader(data_config(index), processors, seed=0), steps=40, streams=4)
    assert all(len(s) == 2 for s in seen)  # every stream reaches both of its shards …
    assert len(set().union(*seen)) == 8  # … and no shard belongs to two streams


def test_streams_share_every_shard_when_there_are_fewer_shards_than_streams(tmp_path, processors):
    index = make_pair_shards(tmp_path, n=12, maxcount=4)  # 3 shards, 4 streams
    seen = shards_read_by_stream(PairLoader(data_config(index), processors, seed=0), steps=40, streams=4)
    assert all(len(s) == 3 for s in seen)


def test_corrupt_png_is_counted_and_skipped(tmp_path, processors):
    index = make_pair_shards(tmp_path, n=16, corrupt=3)
    loader = PairLoader(data_config(index, streams=1, batch=4, buffer=2), processors, seed=0)
    for _ in range(12):
        batch = next(loader)
        assert batch.inputs["image"].shape == (4, 3, 32, 32) and torch.isfinite(batch.inputs["image"]).all()
    counts = loader.skipped()
    assert counts["corrupt"] >= 3
    assert counts["read"] >= 48 + counts["corrupt"]


def test_sample_missing_a_modality_is_counted_as_incomplete(tmp_path, processors):
    pairs = write_pairs(tmp_path / "pairs", 6)
    (pairs / "pair002.txt").unlink()
    make_shards(samples_from_folder(pairs), tmp_path / "shards", maxcount=6)
    loader = PairLoader(data_config(tmp_path / "shards" / "shards.json", streams=1, batch=5, buffer=1), processors, 0)
    next(loader)
    assert loader.skipped()["incomplete"] == 1


def test_mixture_draws_datasets_by_weight():
    draws = [dataset_for_step(0, step, [3.0, 1.0]) for step in range(4000)]
    assert abs(draws.count(0) / 4000 - 0.75) < 0.03
    assert draws == [dataset_for_step(0, step, [3.0, 1.0]) for step in range(4000)]


def test_streams_must_split_over_processes_and_workers(tmp_path, processors):
    index = make_pair_shards(tmp_path, n=6)
    with pytest.raises(ConfigError, match="data.streams"):
        PairLoader(data_config(index, streams=3), processors, seed=0, rank=0, world=2)


def test_packed_share_unpacks_to_the_same_samples_from_one_buffer_per_dtype():
    clips = AudioClips(torch.randn(2, 50), torch.tensor([50, 31]), "a.wav")
    share = {"audio": [clips, AudioClips(torch.randn(1, 7), torch.tensor([7]), "b.wav")],
             "image": [torch.randn(3, 4, 5).transpose(1, 2), torch.randn(3, 5, 4)],  # one not contiguous
             "video": [{"frames": torch.randn(2, 3), "has_audio": torch.tensor(True), "fps": 25.0}]}
    packed = pack(share)
    assert {dtype: b.shape for dtype, b in packed.buffers.items()} == {
        torch.float32: (100 + 7 + 60 + 60 + 6,), torch.int64: (3,), torch.bool: (1,)}
    back = unpack(packed)
    assert back["audio"][0].source == "a.wav" and back["video"][0]["fps"] == 25.0
    assert torch.equal(back["audio"][0].waves, clips.waves) and torch.equal(back["audio"][0].lengths, clips.lengths)
    assert torch.equal(back["image"][0], share["image"][0]) and torch.equal(back["image"][1], share["image"][1])
    assert bool(back["video"][0]["has_audio"]) and back["video"][0]["frames"].shape == (2, 3)


# ---- groups of samples (``group_key``) ----------------------------------------------------------------------------
def grouped_shards(tmp_path: Path, n: int = 12, maxcount: int = 4, missing: int | None = None) -> Path:
    """Shards of ``n`` pairs, each with a ``.cls`` member naming its colour (the colour in its caption)."""
    pairs = write_pairs(tmp_path / "pairs", n)
    for caption in pairs.glob("*.txt"):
        caption.with_suffix(".cls").write_text(caption.read_text().split()[1] + "\n")
    if missing is not None:
        (pairs / f"pair{missing:03d}.cls").unlink()
    make_shards(samples_from_folder(pairs), tmp_path / "shards", maxcount=maxcount)
    return tmp_path / "shards" / "shards.json"


def grouped_config(index: Path, **kwargs) -> DataConfig:
    config = data_config(index, **kwargs)
    config.datasets[0].group_key = "cls"
    return config


def colour_of(key: str) -> str:
    """The colour of the pair a batch key (``shard.tar:pair007``) names, as write_pairs gave it."""
    return list(COLOURS)[int(key.rsplit("pair", 1)[1]) % len(COLOURS)]


@pytest.mark.parametrize("cache_mb", [0, 1])
def test_group_key_gives_each_batch_row_its_samples_group(tmp_path, processors, cache_mb):
    index = grouped_shards(tmp_path)
    loader = PairLoader(grouped_config(index, streams=2, cache_mb=cache_mb), processors, seed=0)
    for _ in range(6):  # 48 rows: every shard read, then replayed from the cache
        batch = next(loader)
        assert batch.groups.dtype == torch.int64 and batch.groups.shape == (8,)
        assert batch.groups.tolist() == [pretrain_data.group_id(colour_of(k), k) for k in batch.keys]


def test_without_group_key_batches_carry_no_groups(tmp_path, processors):
    assert next(PairLoader(data_config(grouped_shards(tmp_path)), processors, seed=0)).groups is None


def test_sample_without_its_group_member_is_counted_as_incomplete(tmp_path, processors):
    index = grouped_shards(tmp_path, n=6, maxcount=6, missing=2)
    loader = PairLoader(grouped_config(index, streams=1, batch=5, buffer=1), processors, seed=0)
    batch = next(loader)
    assert loader.skipped()["incomplete"] == 1 and not any(k.endswith("pair002") for k in batch.keys)


def test_group_ids_are_the_integer_itself_or_a_stable_hash_of_the_text():
    assert pretrain_data.group_id(b" 7\n", "s") == 7 and pretrain_data.group_id("-3", "s") == -3
    red = pretrain_data.group_id(b"red", "s")
    assert red == pretrain_data.group_id("red\n", "s") != pretrain_data.group_id("blue", "s")
    assert red == int.from_bytes(hashlib.blake2b(b"red", digest_size=8).digest(), "little", signed=True)
    with pytest.raises(ValueError, match="shard.tar:k1: its group member is empty"):
        pretrain_data.group_id(b" ", "shard.tar:k1")


def test_a_manifest_label_column_groups_samples_without_becoming_their_caption(tmp_path, processors):
    pairs = write_pairs(tmp_path / "pairs", 8)
    rows = [{"image": f"pairs/pair{i:03d}.png", "caption": (pairs / f"pair{i:03d}.txt").read_text(),
             "label": f"shape-{i % 2}"} for i in range(8)]
    (tmp_path / "m.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert shards_command([str(tmp_path / "m.jsonl"), str(tmp_path / "shards"), "--text-columns", "caption,label"]) == 0
    config = data_config(tmp_path / "shards" / "shards.json", streams=1, batch=8, buffer=1)
    config.datasets[0].group_key = "label.txt"
    batch = next(PairLoader(config, processors, seed=0))
    by_key = {str(i): i for i in range(8)}
    assert batch.groups.tolist() == [pretrain_data.group_id(f"shape-{by_key[k.rsplit(':', 1)[1]] % 2}", k)
                                     for k in batch.keys]
    captions = processors["text"].collate([processors["text"].prepare(r["caption"]) for r in rows])
    assert sorted(map(tuple, batch.inputs["text"].tolist())) == sorted(map(tuple, captions.tolist()))


@pytest.mark.parametrize("key", ["", "__key__"])
def test_group_key_must_name_a_member(key):
    with pytest.raises(ConfigError, match="group_key must name a sample member"):
        DatasetConfig(name="d", group_key=key)


# ---- the decoded-file cache ------------------------------------------------------------------------------------
def test_decoded_cache_gives_the_same_batches_and_decodes_each_file_once(tmp_path, processors, monkeypatch):
    index = make_pair_shards(tmp_path, n=12, maxcount=4)
    decoded = []
    real = pretrain_data.decode_file
    monkeypatch.setattr(pretrain_data, "decode_file",
                        lambda processor, data, suffix: decoded.append(suffix) or real(processor, data, suffix))
    plain, _ = global_batches(data_config(index), processors, world=1, steps=12)  # 96 samples: 8 passes
    plain_decodes = len(decoded)
    decoded.clear()
    cached, _ = global_batches(data_config(index, cache_mb=1), processors, world=1, steps=12)
    for a, b in zip(plain, cached):
        assert torch.equal(a, b)
    assert plain_decodes == 2 * 96
    assert sorted(decoded) == [".png"] * 12 + [".txt"] * 12  # each of the 24 files once


def test_shards_held_decoded_are_replayed_without_reading_their_tars(tmp_path, processors, monkeypatch):
    index = make_pair_shards(tmp_path, n=12, maxcount=4)
    opened = []
    real = pretrain_data.read_shard
    monkeypatch.setattr(pretrain_data, "read_shard", lambda url, counts: opened.append(url) or real(url, counts))
    plain, _ = global_batches(data_config(index, streams=1), processors, world=1, steps=12)  # 96 samples: 8 passes
    visits = len(opened)
    opened.clear()
    replayed, loaders = global_batches(data_config(index, streams=1, cache_mb=1), processors, world=1, steps=12)
    for a, b in zip(plain, replayed):
        assert torch.equal(a, b)
    # a shard's tar is read again only while samples of its last reading still wait in the shuffle buffer, undecoded
    assert visits >= 24 and len(set(opened)) == 3 and len(opened) <= 6
    assert loaders[0].skipped()["read"] == 96 + 4  # replayed samples count as read: the 96 and 4 left buffered


def test_a_shard_whose_files_do_not_all_fit_the_cache_is_read_again(tmp_path, processors, monkeypatch):
    index = make_pair_shards(tmp_path, n=12, maxcount=12)
    plain, _ = global_batches(data_config(index, streams=1), processors, world=1, steps=6)  # 48 samples: 4 passes
    opened = []
    real = pretrain_data.read_shard
    monkeypatch.setattr(pretrain_data, "read_shard", lambda url, counts: opened.append(url) or real(url, counts))
    image_bytes = 3 * 32 * 32 * 4
    monkeypatch.setattr(pretrain_data, "DecodedCache", lambda budget: DecodedCache(10 * image_bytes))
    again, _ = global_batches(data_config(index, streams=1, cache_mb=1), processors, world=1, steps=6)
    for a, b in zip(plain, again):
        assert torch.equal(a, b)
    assert len(opened) >= 4


def test_corrupt_samples_are_counted_again_on_every_pass_of_their_shard(tmp_path, processors):
    index = make_pair_shards(tmp_path, n=12, corrupt=2, maxcount=12)
    loader = PairLoader(data_config(index, streams=1, cache_mb=1), processors, seed=3)
    for _ in range(5):  # 40 good samples: four passes over the shard's 10
        next(loader)
    counts = loader.skipped()
    assert counts["corrupt"] == 2 * (counts["read"] // 12)
    assert counts["read"] >= 48


def test_decoded_cache_hands_out_copies_and_stops_growing_at_its_budget():
    cache = DecodedCache(budget_bytes=3 * 4 * 100)  # three [100] float32 tensors
    clips = AudioClips(torch.ones(1, 100), torch.tensor([100]), "a.wav")
    first = cache.get_or_decode("a", lambda: clips)
    first.waves.zero_()
    again = cache.get_or_decode("a", lambda: pytest.fail("a stored file was decoded again"))
    assert torch.equal(again.waves, torch.ones(1, 100)) and again.source == "a.wav"
    assert cache.used_bytes == 4 * 100 + 8
    cache.get_or_decode("b", lambda: {"frames": torch.zeros(100), "fps": 25.0})
    cache.get_or_decode("c", lambda: torch.zeros(100))  # over the budget: handed out, not kept
    assert len(cache) == 2 and (cache.hits, cache.misses) == (1, 3)
    assert torch.equal(cache.get_or_decode("c", lambda: torch.full((3,), 7.0)), torch.full((3,), 7.0))


def test_negative_decoded_cache_size_is_refused():
    overrides = ["data.datasets=[{name: d, shards: [x.tar], pairs: [[image, text]]}]", "data.decoded_cache_mb=-5"]
    with pytest.raises(ConfigError, match="data.decoded_cache_mb must be 0 or more, got -5"):
        load_config(None, overrides)
