"""A loader worker's memory of decoded files: a sample read again — in a later pass, or by another stream visiting
its shard — is not decoded again.

This is sound because preprocessing is deterministic (a file gives the same input every time, as at inference)
and training augmentation runs afterwards, on the collated batch (:mod:`.augment`). Entries are never evicted:
shard visits are uniform, so once the data outgrows the budget any subset kept saves as much as any other, and
the cache simply stops growing. Each loader worker is a process with its own cache, so the memory used is up to
``budget × workers`` per training process.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any, Callable, Hashable

import numpy as np
import torch


IMMUTABLE = (str, bytes, int, float, complex, bool, type(None))


class DecodedCache:
    """Decoded inputs (tensors, arrays, or dataclasses/dicts/lists of them) by key, up to ``budget_bytes`` of array data."""

    def __init__(self, budget_bytes: int):
        self.budget_bytes = budget_bytes
        self.used_bytes = 0
        self.hits = self.misses = 0
        self._entries: dict[Hashable, Any] = {}

    def get_or_decode(self, key: Hashable, decode: Callable[[], Any]) -> Any:
        """The input stored under ``key``, else ``decode()`` (stored when it fits). A copy either way: the
        DataLoader moves the tensors it sends between processes into shared memory, which must not happen to
        the stored ones (each would hold a shared-memory segment for the worker's lifetime)."""
        if key in self._entries:
            self.hits += 1
            return _copy(self._entries[key])
        self.misses += 1
        value = decode()
        size = _nbytes(value)
        if self.used_bytes + size <= self.budget_bytes:
            self._entries[key] = value
            self.used_bytes += size
            return _copy(value)
        return value

    def __len__(self) -> int:
        return len(self._entries)


def _copy(value: Any) -> Any:
    """A copy of an input's arrays, the rest shared (``copy.deepcopy`` is ~10× slower on tensors)."""
    if isinstance(value, torch.Tensor):
        return value.clone()
    if isinstance(value, np.ndarray):
        return value.copy()
    if isinstance(value, IMMUTABLE):
        return value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.replace(value, **{f.name: _copy(getattr(value, f.name))
                                             for f in dataclasses.fields(value) if f.init})
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_copy(v) for v in value)
    return copy.deepcopy(value)


def _nbytes(value: Any) -> int:
    """Bytes of the arrays in an input: a tensor, an array, or a dataclass, dict, list or tuple holding them."""
    if isinstance(value, torch.Tensor):
        return value.element_size() * value.nelement()
    if isinstance(value, np.ndarray):
        return value.nbytes
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = [getattr(value, f.name) for f in dataclasses.fields(value)]
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (list, tuple)):
        return sum(_nbytes(v) for v in value)
    return 0
