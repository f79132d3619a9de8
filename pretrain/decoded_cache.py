"""A loader worker's memory of decoded files: a sample read again — in a later pass, or by another stream visiting
its shard — is not decoded again.

This is sound because preprocessing is deterministic (a file gives the same input every time, as at inference)
and training augmentation runs afterwards, on the collated batch (:mod:`.augment`). Entries are never evicted:
shard visits are uniform, so once the data outgrows the budget any subset kept saves as much as any other, and
the cache simply stops growing. Each loader worker is a process with its own cache, so the memory used is up to
``budget × workers`` per training process.
"""

from __future__ import annotations

from typing import Any, Callable, Hashable

import numpy as np
import torch

from .trees import map_leaves

ARRAYS = (torch.Tensor, np.ndarray)


class DecodedCache:
    """Decoded inputs (tensors and arrays in dataclasses, dicts, lists) by key, up to ``budget_bytes`` of arrays."""

    def __init__(self, budget_bytes: int):
        self.budget_bytes = budget_bytes
        self.used_bytes = 0
        self.hits = self.misses = 0
        self._entries: dict[Hashable, Any] = {}

    def get_or_decode(self, key: Hashable, decode: Callable[[], Any]) -> Any:
        """The input stored under ``key``, else ``decode()`` (stored when it fits). Its arrays are copies either
        way: the DataLoader moves the tensors it sends between processes into shared memory, which must not
        happen to the stored ones (each would hold a shared-memory segment for the worker's lifetime)."""
        if key in self._entries:
            self.hits += 1
            return _copy(self._entries[key])
        self.misses += 1
        value = decode()
        size = _nbytes(value)
        if self.used_bytes + size > self.budget_bytes:
            return value
        self._entries[key] = value
        self.used_bytes += size
        return _copy(value)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._entries

    def __len__(self) -> int:
        return len(self._entries)


def _copy(value: Any) -> Any:
    return map_leaves(value, lambda a: a.clone() if isinstance(a, torch.Tensor) else a.copy(), ARRAYS)


def _nbytes(value: Any) -> int:
    sizes: list[int] = []
    map_leaves(value, lambda a: sizes.append(a.nbytes), ARRAYS)
    return sum(sizes)
