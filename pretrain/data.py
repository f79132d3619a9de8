"""Training data: webdataset shards → resumable sample streams → one collated batch of pairs per step.

A shard is a tar file in webdataset layout: the files of one sample share a key and differ in extension
(``000042.jpg``, ``000042.txt``, ``000042.npy``); the extension's suffix names the modality through the registry.

Why not webdataset's ``ResampledShards`` + ``shuffle``: their state lives in random generators seeded per worker
and cannot be saved, so a resumed run would see other data, and the batch a step sees would depend on the number
of processes. Here the global batch of step ``t`` is the concatenation of ``data.streams`` independent streams;
each stream is a pure function of (seed, dataset, stream index): shard visits drawn with replacement
(resampled, infinite), samples passed through a shuffle buffer whose draw ``n`` is seeded by ``n``. A stream's
position is a small JSON object (visit, offset in it, the ids in its buffer) that checkpoints store; restoring it
re-reads at most the shards its buffer still holds samples of. Stream ``c`` of ``S`` visits only every ``S``-th
shard from its ``c``-th (:func:`stream_shards`; all of them when there are fewer shards than streams), as
webdataset's ``split_by_worker`` gives each worker its own shards: a loader worker then decodes only its streams'
share of the data (with the decoded cache, half the decoding with two workers) instead of every sample once per
worker; a shard a worker holds decoded is then replayed from memory instead of read again (:mod:`.shard_replay`).
Reading the tars is webdataset's (``tarfile_samples``; the URL schemes accepted, checked before any is opened:
:mod:`.shard_urls`). Which dataset a step draws from is a seeded choice by mixture weight, the same on every
process.
"""

from __future__ import annotations

import hashlib
import random
from collections import Counter
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from omniembed.errors import ConfigError, OmniEmbedError
from omniembed.extras import require
from omniembed.registry import Modality, modality_for_suffix

from .config import DataConfig, DatasetConfig
from .decoded_cache import DecodedCache
from .shard_replay import ShardReplay
from .shard_urls import expand_shards
from .tensor_pack import pack, unpack

braceexpand = require("braceexpand", "training data (shard patterns)")
wds = require("webdataset", "training data (webdataset shards)")

DECODE_ERRORS = (OmniEmbedError, ValueError, RuntimeError, OSError, EOFError, KeyError, IndexError)
"""What a corrupt or odd file raises while decoding; such a sample is counted and skipped."""


class DataError(OmniEmbedError):
    """The training data cannot deliver batches (no readable shards, too many corrupt samples)."""


# ---- shards ----------------------------------------------------------------------------------------------------
def read_shard(url: str, counts: Counter) -> Iterator[dict[str, Any]]:
    """The samples of one tar ({"__key__", ext: bytes, ...}); a read error ends the shard and is counted."""
    def on_error(exc: Exception) -> bool:
        counts["shard_errors"] += 1
        return False  # stop this shard: what follows a broken tar header is not trustworthy

    yield from wds.tarfile_samples(iter([{"url": url}]), handler=on_error)


# ---- one resumable stream --------------------------------------------------------------------------------------
@dataclass
class StreamState:
    """Where a stream stands: shard visit and samples read from it, draws made, buffer contents as (visit, index)."""

    visit: int = 0
    offset: int = 0
    emitted: int = 0
    buffer: list[tuple[int, int] | list[int]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)


class SampleStream:
    """An infinite, seekable stream of raw samples from one dataset (see the module docstring)."""

    MAX_EMPTY_VISITS = 64

    def __init__(self, urls: list[str], seed: str, buffer_size: int, state: StreamState | None = None,
                 read: Callable[[str, Counter], Iterator[dict[str, Any]]] = read_shard):
        self.urls = urls
        self.read = read
        self.seed = seed
        self.buffer_size = max(1, buffer_size)
        self.counts: Counter = Counter()
        self._buffer: list[tuple[tuple[int, int], dict]] = []
        self._reader: Iterator[dict] | None = None
        self._visit = self._offset = self._emitted = 0
        if state is not None:
            self._restore(state)

    def shard(self, visit: int) -> str:
        return self.urls[random.Random(f"{self.seed}/visit/{visit}").randrange(len(self.urls))]

    def __iter__(self) -> "SampleStream":
        return self

    def __next__(self) -> dict[str, Any]:
        while len(self._buffer) < self.buffer_size:
            self._buffer.append(self._read_next())
        j = random.Random(f"{self.seed}/draw/{self._emitted}").randrange(len(self._buffer))
        self._buffer[j], self._buffer[-1] = self._buffer[-1], self._buffer[j]
        self._emitted += 1
        return self._buffer.pop()[1]

    def _read_next(self) -> tuple[tuple[int, int], dict]:
        empty = 0
        while True:
            if self._reader is None:
                self._reader = self.read(self.shard(self._visit), self.counts)
            sample = next(self._reader, None)
            if sample is not None:
                self._offset += 1
                self.counts["read"] += 1
                return (self._visit, self._offset - 1), sample
            if self._offset == 0:
                empty += 1
                if empty >= self.MAX_EMPTY_VISITS:
                    raise DataError(f"no samples in the shards: {self.MAX_EMPTY_VISITS} shard visits in a row "
                                    f"gave none (last: {self.shard(self._visit)}; are they empty or not tar files?)")
            self._reader, self._visit, self._offset = None, self._visit + 1, 0

    def state(self) -> StreamState:
        # the ids stay tuples (JSON writes them as lists): this runs every step for every stream
        return StreamState(self._visit, self._offset, self._emitted, [i for i, _ in self._buffer], dict(self.counts))

    def _restore(self, state: StreamState) -> None:
        """Re-read the samples still in the buffer (from their shard visits), then seek into the current visit."""
        wanted = {tuple(i) for i in state.buffer}
        found: dict[tuple[int, int], dict] = {}
        for visit in sorted({v for v, _ in wanted}):
            left = {i for i in wanted if i[0] == visit}
            for offset, sample in enumerate(read_shard(self.shard(visit), Counter())):
                if (visit, offset) in left:
                    found[(visit, offset)] = sample
                    left.discard((visit, offset))
                if not left:
                    break
        self._buffer = [(tuple(i), found[tuple(i)]) for i in state.buffer if tuple(i) in found]
        self.counts = Counter(state.counts)
        self._visit, self._offset, self._emitted = state.visit, 0, state.emitted
        self._reader = read_shard(self.shard(self._visit), self.counts)
        for _ in range(state.offset):
            if next(self._reader, None) is None:
                break
            self._offset += 1


# ---- decoding a raw sample into model inputs ---------------------------------------------------------------------
class PairDecoder:
    """Raw sample {ext: bytes} → {modality: one preprocessed input} through each modality's ``prepare``.

    Each modality decodes the bytes with :meth:`~omniembed.registry.Modality.prepare_bytes`, exactly as it decodes
    that file at inference.
    """

    def __init__(self, processors: dict[str, Modality], modalities: list[str], keys: dict[str, str],
                 cache: DecodedCache | None = None, group_key: str | None = None):
        self.processors = {m: processors[m] for m in modalities}
        self.keys = keys
        self.cache = cache
        self.group_key = group_key
        self._members: dict[tuple[str, ...], dict[str, tuple[str, str] | None]] = {}

    def extension_of(self, modality: str, sample: dict[str, Any]) -> tuple[str, str] | None:
        """(sample key, file suffix) of ``modality``'s member, or None when the sample has none."""
        if modality in self.keys:
            ext = self.keys[modality]
            return (ext, "." + ext.rsplit(".", 1)[-1]) if ext in sample else None
        for ext in sorted(k for k in sample if not k.startswith("__") and k != self.group_key):
            found = suffix_modality(ext)
            if found is not None and found[0] == modality:
                return ext, found[1]
        return None

    def members(self, sample: dict[str, Any]) -> dict[str, tuple[str, str] | None]:
        """{modality: :meth:`extension_of`} for every modality decoded; worked out once per set of member names (a
        dataset's samples share a few), as the registry look-ups cost ~12 ms a step of the OmniDigits binding."""
        names = tuple(k for k in sample if not k.startswith("__"))
        if names not in self._members:
            self._members[names] = {m: self.extension_of(m, sample) for m in self.processors}
        return self._members[names]

    def __call__(self, sample: dict[str, Any]) -> dict[str, Any] | None:
        """The decoded inputs, or None when the sample lacks a modality or its ``group_key`` member (counted as
        incomplete)."""
        members = self.members(sample)
        if self._incomplete(sample, members):
            return None
        return {m: self._decode(m, sample, ext, suffix) for m, (ext, suffix) in members.items()}

    def group(self, sample: dict[str, Any]) -> int:
        """The sample's group (:func:`group_id` of its ``group_key`` member), for a complete sample."""
        key = self._cache_key(GROUP, sample, self.group_key)
        decode = partial(group_id, sample[self.group_key], sample_name(sample))
        return decode() if self.cache is None or key is None else self.cache.get_or_decode(key, decode)

    def needs_bytes(self, sample: dict[str, Any]) -> bool:
        """Whether decoding ``sample`` reads a member's bytes: False when it is incomplete or has every decoded
        member (and its group) in the cache."""
        members = self.members(sample)
        if self._incomplete(sample, members):
            return False
        keys = [self._cache_key(m, sample, ext) for m, (ext, _) in members.items()]
        if self.group_key is not None:
            keys.append(self._cache_key(GROUP, sample, self.group_key))
        return self.cache is None or None in keys or not all(key in self.cache for key in keys)

    def _incomplete(self, sample: dict[str, Any], members: dict[str, tuple[str, str] | None]) -> bool:
        return (any(member is None for member in members.values())
                or (self.group_key is not None and self.group_key not in sample))

    def _decode(self, modality: str, sample: dict[str, Any], ext: str, suffix: str) -> Any:
        decode = partial(decode_file, self.processors[modality], sample[ext], suffix)
        key = self._cache_key(modality, sample, ext)
        return decode() if self.cache is None or key is None else self.cache.get_or_decode(key, decode)

    @staticmethod
    def _cache_key(modality: str, sample: dict[str, Any], ext: str) -> tuple | None:
        # the modality too: datasets' ``keys`` may read one member as different modalities
        return (sample["__url__"], sample["__key__"], ext, modality) if "__url__" in sample else None


GROUP = "__group__"
"""The decoded cache's name for a sample's group, beside its modalities'."""


def group_id(value: bytes | str, name: str) -> int:
    """A group member's value (``.cls``: ``b"7"``; any text) → a signed 64-bit id, the same in every process: the
    integer itself when the text is one, else the first 8 bytes of its BLAKE2b digest."""
    text = (value.decode("utf-8") if isinstance(value, bytes) else str(value)).strip()
    if not text:
        raise ValueError(f"{name}: its group member is empty")
    try:
        number = int(text)
    except ValueError:
        return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "little", signed=True)
    if not -(1 << 63) <= number < 1 << 63:
        raise ValueError(f"{name}: group {text} is outside the signed 64-bit range")
    return number


def suffix_modality(ext: str) -> tuple[str, str] | None:
    """(modality, suffix) of a member extension by its longest registered suffix: ``depth.png`` → depth, not image."""
    parts = ext.lower().split(".")
    for i in range(len(parts)):
        suffix = "." + ".".join(parts[i:])
        modality = modality_for_suffix(suffix)
        if modality is not None:
            return modality, suffix
    return None


def decode_file(processor: Modality, data: bytes, suffix: str) -> Any:
    """One file's bytes → the processor's preprocessed sample."""
    return processor.prepare_bytes(data, suffix)


# ---- the per-step schedule and the rank's loader --------------------------------------------------------------
def stream_shards(urls: list[str], stream: int, streams: int) -> list[str]:
    """The shards stream ``stream`` of ``streams`` visits: every ``streams``-th from its own, so that streams (and the
    loader workers owning them) read disjoint shards; every shard when there are fewer shards than streams."""
    return urls[stream::streams] if len(urls) >= streams else urls


def dataset_for_step(seed: int, step: int, weights: list[float]) -> int:
    """Index of the dataset step ``step`` draws its whole global batch from (the same on every process)."""
    return random.Random(f"{seed}/schedule/{step}").choices(range(len(weights)), weights=weights)[0]


def streams_of(rank: int, world: int, worker: int, workers: int, streams: int) -> range:
    """The stream indices one loader worker of one process owns (contiguous, in global batch order)."""
    if streams % (world * workers):
        raise ConfigError(f"data.streams ({streams}) must be divisible by processes × loader workers "
                          f"({world} × {workers}); set data.streams={world * workers} or a multiple")
    per = streams // (world * workers)
    start = (rank * workers + worker) * per
    return range(start, start + per)


class StepShards(IterableDataset):
    """Yields, for each step from ``start_step``, this worker's share of the step's batch: its samples, uncollated,
    packed (:mod:`.tensor_pack`), and its streams' positions."""

    def __init__(self, config: DataConfig, processors: dict[str, Modality], seed: int, rank: int, world: int,
                 start_step: int, state: dict[str, dict] | None):
        self.config, self.processors, self.seed = config, processors, seed
        self.rank, self.world, self.start_step = rank, world, start_step
        self.state = state or {}
        self.urls = [expand_shards(ds.shards, config.allow_pipe_urls, f"data.datasets.{i}.shards")
                     for i, ds in enumerate(config.datasets)]

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        mine = streams_of(self.rank, self.world, worker, workers, self.config.streams)
        datasets = self.config.datasets
        cache = DecodedCache(self.config.decoded_cache_mb << 20) if self.config.decoded_cache_mb else None
        decoders = [PairDecoder(self.processors, modalities_of(ds), ds.keys, cache, ds.group_key)
                    for ds in datasets]
        streams = {}
        for d, ds in enumerate(datasets):
            read = read_shard if cache is None else ShardReplay(read_shard, decoders[d])
            for c in mine:
                saved = self.state.get(stream_id(ds, c))
                streams[d, c] = SampleStream(stream_shards(self.urls[d], c, self.config.streams),
                                             f"{self.seed}/{ds.name}/{c}", self.config.shuffle_buffer,
                                             StreamState(**saved) if saved else None, read)
        weights = [ds.weight for ds in datasets]
        step = self.start_step
        while True:
            d = dataset_for_step(self.seed, step, weights)
            per_stream = (datasets[d].batch_size or self.config.batch_size) // self.config.streams
            samples: dict[str, list] = {m: [] for m in decoders[d].processors}
            keys: list[str] = []
            groups: list[int] = []
            try:
                for c in mine:
                    for key, inputs, group in self._take(streams[d, c], decoders[d], per_stream):
                        keys.append(key)
                        groups.append(group)
                        for m, x in inputs.items():
                            samples[m].append(x)
            except DataError as exc:  # sent as data: raised in a worker, it would reach the user as a traceback
                yield {"step": step, "error": str(exc)}
                return
            yield {"step": step, "dataset": d, "samples": pack(samples), "keys": keys,
                   "groups": groups if datasets[d].group_key is not None else None,
                   "state": {stream_id(datasets[e], c): vars(s.state()) for (e, c), s in streams.items()}}
            step += 1

    def _take(self, stream: SampleStream, decode: PairDecoder, n: int
              ) -> Iterator[tuple[str, dict[str, Any], int | None]]:
        """``n`` decoded samples of ``stream`` as (``shard name:key``, inputs, group or None), skipping (and
        counting) bad ones."""
        got = 0
        while got < n:
            sample = next(stream)
            group = None
            try:
                inputs = decode(sample)
                if inputs is not None and decode.group_key is not None:
                    group = decode.group(sample)
            except DECODE_ERRORS:
                stream.counts["corrupt"] += 1
                inputs = None
            else:
                if inputs is None:
                    stream.counts["incomplete"] += 1
            if inputs is None:
                bad = stream.counts["corrupt"] + stream.counts["incomplete"]
                if bad > 16 and bad > self.config.max_skip_fraction * stream.counts["read"]:
                    raise DataError(f"{bad} of {stream.counts['read']} samples read from {stream.seed} were corrupt "
                                    f"or incomplete (limit data.max_skip_fraction={self.config.max_skip_fraction})")
                continue
            got += 1
            yield sample_name(sample), inputs, group


def _as_is(item: Any) -> Any:
    return item


def sample_name(sample: dict[str, Any]) -> str:
    """``shard-000003.tar:rec_017``: where a sample came from, for messages."""
    return f"{Path(str(sample.get('__url__', '?'))).name}:{sample.get('__key__', '?')}"


def stream_id(ds: DatasetConfig, c: int) -> str:
    return f"{ds.name}/{c}"


def modalities_of(ds: DatasetConfig) -> list[str]:
    return list(dict.fromkeys(m for pair in ds.pairs for m in pair))


@dataclass
class Batch:
    """One process's batch of one step, all from dataset ``dataset``: ``micro_batches`` is the batch's rows in
    order, in one or more equal parts, each collated {modality: batch} (gradient accumulation scores them as one);
    ``keys`` names its samples in batch order (:func:`sample_name`); ``groups`` [size] int64 their groups, when the
    dataset has a ``group_key``."""

    step: int
    dataset: int
    micro_batches: list[dict[str, Any]]
    size: int
    keys: list[str] = field(default_factory=list)
    groups: torch.Tensor | None = None

    @property
    def inputs(self) -> dict[str, Any]:
        """The collated batch {modality: batch}, when it is in one part."""
        if len(self.micro_batches) != 1:
            raise DataError(f"step {self.step}'s batch is split in {len(self.micro_batches)} micro-batches")
        return self.micro_batches[0]


class PairLoader:
    """This process's batches, one per step from ``start_step``, assembled from its loader workers' shares.

    ``state_dict()`` is the position after the last batch handed out, for this process's streams; a checkpoint
    merges it over processes (keys are stream ids, so a resumed run may use another process or worker count).
    ``micro_batches``: each batch is collated in that many equal, consecutive parts (``train.accum_steps``).
    """

    def __init__(self, config: DataConfig, processors: dict[str, Modality], seed: int, rank: int = 0,
                 world: int = 1, start_step: int = 0, state: dict[str, dict] | None = None,
                 micro_batches: int = 1):
        self.config = config
        self.processors = processors
        self.micro_batches = micro_batches
        for ds in config.datasets:
            rows = (ds.batch_size or config.batch_size) // world
            if micro_batches < 1 or rows % micro_batches:
                raise ConfigError(f"dataset {ds.name}: a process's batch of {rows} cannot be split in "
                                  f"train.accum_steps={micro_batches} equal micro-batches")
        self.workers = max(1, config.num_workers)
        streams_of(rank, world, 0, self.workers, config.streams)  # fail early on a bad split
        dataset = StepShards(config, processors, seed, rank, world, start_step, state)
        self._state = dict(state or {})
        # its own generator: DataLoader draws worker seeds from it, which must not move the training RNG
        # collate_fn: the worker's share is collated here, by the processors; the default would walk every
        # stream's buffer state in the workers on each step for nothing (~30 ms a step)
        self._loader = DataLoader(dataset, batch_size=None, num_workers=config.num_workers, collate_fn=_as_is,
                                  prefetch_factor=config.prefetch if config.num_workers else None,
                                  generator=torch.Generator().manual_seed(seed))
        self._it = iter(self._loader)

    def __iter__(self) -> "PairLoader":
        return self

    def __next__(self) -> Batch:
        parts = [next(self._it) for _ in range(self.workers)]
        for p in parts:
            if "error" in p:
                raise DataError(p["error"])
        if len({p["step"] for p in parts}) != 1:
            raise DataError(f"loader workers out of step: {[p['step'] for p in parts]}")
        shares = [unpack(p["samples"]) for p in parts]
        samples = {m: [x for share in shares for x in share[m]] for m in shares[0]}
        for p in parts:
            self._state.update(p["state"])
        size = len(next(iter(samples.values())))
        part = size // self.micro_batches
        micro = [{m: self.processors[m].collate(xs[i * part:(i + 1) * part]) for m, xs in samples.items()}
                 for i in range(self.micro_batches)]
        groups = (None if parts[0]["groups"] is None
                  else torch.tensor([g for p in parts for g in p["groups"]], dtype=torch.int64))
        return Batch(parts[0]["step"], parts[0]["dataset"], micro, size, [k for p in parts for k in p["keys"]],
                     groups)

    def state_dict(self) -> dict[str, dict]:
        return dict(self._state)

    def skipped(self) -> Counter:
        """Samples read, corrupt, incomplete and shard read errors, summed over this process's streams."""
        total: Counter = Counter()
        for s in self._state.values():
            total.update(s.get("counts", {}))
        return total
