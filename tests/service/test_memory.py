"""Freed memory goes back to the system (glibc)."""

import numpy as np

from service.memory import keep_big_blocks_out_of_the_heap, release_free_memory


def _rss_megabytes() -> float:
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def test_freed_heap_blocks_are_returned_after_a_trim() -> None:
    assert keep_big_blocks_out_of_the_heap()
    release_free_memory()  # what earlier tests in this process freed would otherwise take the new blocks
    before = _rss_megabytes()
    blocks = [np.ones(64 * 1024, np.uint8) for _ in range(4000)]  # 256 MB of heap blocks
    assert _rss_megabytes() > before + 200
    del blocks
    release_free_memory()
    assert _rss_megabytes() < before + 50
