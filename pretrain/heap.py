"""Keeping freed memory in the training process instead of handing it back to the system.

glibc's allocator serves every block above its mmap threshold (which it raises, when such a block is freed, to at
most 32 MiB) with a fresh ``mmap`` and returns it with ``munmap`` when freed, and it trims the top of its heap back
to the system once more than twice that lies free there. A training step allocates and frees the same large
activations and gradients every step, so each of them comes back as new pages, and every 4 KiB page faults on its
first write. On the CPU that costs as much as the arithmetic: the OmniDigits binding (the point-cloud tower's batch
of 64 × 64 groups × 16 points is 32 MiB at 128 channels) made ~69,000 page faults a step and spent 46 s of its 382 s
of CPU time over 330 steps in the kernel (9 s with the memory kept); a batch norm over [65536, 128] took 14.7 ms
with glibc's defaults and 3.1 ms with the memory kept (2 threads). :func:`freed_memory_kept` raises both thresholds
while training, so freed blocks stay in the heap and are reused at the next step (the process keeps its peak working
set instead of returning it between steps), then hands the kept memory back. Other C libraries (musl) and other
systems are left as they are.
"""

from __future__ import annotations

import contextlib
import ctypes
from typing import Iterator

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
"""``mallopt`` parameter numbers (glibc's ``malloc.h``)."""
KEPT_MMAP_THRESHOLD = 1 << 30
"""While training, blocks up to 1 GiB come from the heap (and are reused) instead of their own mapping."""
KEPT_TRIM_THRESHOLD = (1 << 31) - 1
"""While training, the heap's free top is given back only past 2 GiB (``mallopt`` takes an ``int``)."""
RESTORED_MMAP_THRESHOLD = 32 << 20
RESTORED_TRIM_THRESHOLD = 64 << 20
"""Afterwards: where glibc's own dynamic thresholds settle once a large block has been freed (``mallopt`` cannot
switch the dynamic rule back on)."""


def glibc() -> ctypes.CDLL | None:
    """The process's own C library (the symbols already loaded into it) when it is glibc, which has
    ``gnu_get_libc_version``, ``mallopt`` and ``malloc_trim``; else None."""
    try:
        libc = ctypes.CDLL(None)
    except OSError:
        return None
    names = ("gnu_get_libc_version", "mallopt", "malloc_trim")
    return libc if all(hasattr(libc, name) for name in names) else None


@contextlib.contextmanager
def freed_memory_kept(enabled: bool = True) -> Iterator[bool]:
    """Within the block, freed blocks of up to :data:`KEPT_MMAP_THRESHOLD` stay in this process's heap for reuse
    (processes forked inside it, such as loader workers, inherit that); after it, glibc's usual thresholds come
    back and the kept memory is returned (``malloc_trim``). Yields whether the setting took effect: False when
    disabled or the C library is not glibc."""
    libc = glibc() if enabled else None
    if libc is None:
        yield False
        return
    # both are set (and both restored below) whichever of them glibc refuses
    accepted = [libc.mallopt(M_MMAP_THRESHOLD, KEPT_MMAP_THRESHOLD),
                libc.mallopt(M_TRIM_THRESHOLD, KEPT_TRIM_THRESHOLD)]
    try:
        yield all(accepted)
    finally:
        libc.mallopt(M_MMAP_THRESHOLD, RESTORED_MMAP_THRESHOLD)
        libc.mallopt(M_TRIM_THRESHOLD, RESTORED_TRIM_THRESHOLD)
        libc.malloc_trim(0)
