"""Giving memory back to the system after big images (glibc's allocator; a no-op elsewhere).

After a 24 Mpx request the gateway kept twice its idle resident memory: freed blocks stayed in
glibc's heaps, because its mmap threshold grows with every big block freed (up to 32 MB), so later
big arrays come from the heap and are not returned. A fixed threshold keeps big arrays in their own
mappings (returned on free), and a trim after each big job hands back what the heaps hold free.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

__all__ = ["keep_big_blocks_out_of_the_heap", "release_free_memory"]

_M_MMAP_THRESHOLD = -3
#: Blocks from 1 MiB up get their own mapping (glibc's default starts at 128 KiB but drifts upward).
MMAP_THRESHOLD_BYTES = 1 << 20


@functools.cache
def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    return libc if libc is not None and hasattr(libc, "malloc_trim") else None


def keep_big_blocks_out_of_the_heap() -> bool:
    """Fix glibc's mmap threshold at :data:`MMAP_THRESHOLD_BYTES`; False where that is not glibc."""
    libc = _libc()
    return bool(libc and libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))


def release_free_memory() -> bool:
    """Return the heaps' free memory to the system (``malloc_trim``); True if any was."""
    libc = _libc()
    return bool(libc and libc.malloc_trim(0))
