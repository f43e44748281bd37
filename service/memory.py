"""Giving memory back to the system after big images (glibc's allocator; a no-op elsewhere).

After a 24 Mpx request the gateway kept twice its idle resident memory: freed blocks stayed in
glibc's heaps, because its mmap threshold grows with every big block freed (up to 32 MB), so later
big arrays come from the heap and are not returned. A fixed threshold keeps big arrays in their own
mappings (returned on free), and a trim after each big job hands back what the heaps hold free.

The gateway fixes it at 1 MiB, where its big arrays are an image's. The embedded backend fixes it at
glibc's largest, 32 MiB: every block in its own mapping is a fresh ``mmap`` whose pages fault in
zeroed, and a network iteration allocates hundreds of megabytes of tensors of 1-30 MB; at 1 MiB a
Kodak decompress took 1.76 s instead of 1.25 s (docs/decisions.md 39).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

__all__ = [
    "BACKEND_MMAP_THRESHOLD_BYTES",
    "MMAP_THRESHOLD_BYTES",
    "keep_big_blocks_out_of_the_heap",
    "release_free_memory",
]

_M_MMAP_THRESHOLD = -3
#: Blocks from 1 MiB up get their own mapping (glibc's default starts at 128 KiB but drifts upward).
MMAP_THRESHOLD_BYTES = 1 << 20
#: The embedded backend's: glibc's largest, where its default drifts to (network tensors reuse heap memory).
BACKEND_MMAP_THRESHOLD_BYTES = 32 << 20


@functools.cache
def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    return libc if libc is not None and hasattr(libc, "malloc_trim") else None


def keep_big_blocks_out_of_the_heap(threshold: int = MMAP_THRESHOLD_BYTES) -> bool:
    """Fix glibc's mmap threshold at ``threshold`` bytes; False where that is not glibc."""
    libc = _libc()
    return bool(libc and libc.mallopt(_M_MMAP_THRESHOLD, threshold))


def release_free_memory() -> bool:
    """Return the heaps' free memory to the system (``malloc_trim``); True if any was."""
    libc = _libc()
    return bool(libc and libc.malloc_trim(0))
