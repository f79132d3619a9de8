"""Replaying a shard from memory: a later visit of a shard whose every sample a loader worker already holds decoded
(:mod:`.decoded_cache`) lists its samples from memory instead of reading the tar again.

With the decoded cache, a dataset that fits in memory is decoded once, but each pass still read every tar: parsing
the tar headers and copying every member's bytes (videos included where a dataset pairs only images and captions)
took ~0.4 ms a sample, ~25 ms of each 64-sample step of the OmniDigits anchor. Once a shard has been read to its end
without a read error, its samples' keys and member names (no bytes) are kept; a visit replays them, in the same
order, when the decoder needs no bytes for any of them (each is in the cache, or lacks a member and so counts as
incomplete again). A sample that was corrupt, or did not fit in the cache's budget, needs its bytes, so its shard
is read from the tar as before. The cache never evicts, so a shard once replayable stays so. Samples come out alike
either way, so batches, stream positions and resumption do not depend on whether a visit was replayed.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Callable, Iterator, Protocol

Sample = dict[str, Any]
"""A raw webdataset sample: ``__key__``, ``__url__`` and one entry per member (``ext``: bytes)."""


class BytesNeed(Protocol):
    def needs_bytes(self, sample: Sample) -> bool:
        """Whether decoding ``sample`` would read any member's bytes."""


class ShardReplay:
    """Reads shards through ``read`` (url, counts → samples) and replays those it may (see the module docstring)
    for one dataset's ``decoder``."""

    def __init__(self, read: Callable[[str, Counter], Iterator[Sample]], decoder: BytesNeed):
        self.read = read
        self.decoder = decoder
        self._listings: dict[str, list[Sample]] = {}
        self._replayable: set[str] = set()

    def __call__(self, url: str, counts: Counter) -> Iterator[Sample]:
        """The samples of shard ``url``, from memory when replayable; a read error is counted in ``counts``."""
        if self._may_replay(url):
            yield from (dict(sample) for sample in self._listings[url])
            return
        listing = []
        errors = counts["shard_errors"]
        for sample in self.read(url, counts):
            listing.append(skeleton(sample))
            yield sample
        if counts["shard_errors"] == errors:
            self._listings[url] = listing

    def _may_replay(self, url: str) -> bool:
        if url not in self._replayable and url in self._listings:
            if not any(self.decoder.needs_bytes(sample) for sample in self._listings[url]):
                self._replayable.add(url)
        return url in self._replayable


def skeleton(sample: Sample) -> Sample:
    """``sample`` with its members' bytes dropped (None): the names, key and URL the decoder looks up."""
    return {k: (v if k.startswith("__") else None) for k, v in sample.items()}
