"""Mutations of valid bitstreams for the fuzz tests: truncations, bit flips (with and without a repaired
checksum, so the parser is exercised beyond the CRC), rewritten header fields, and random bytes."""

from __future__ import annotations

import struct
import zlib

import numpy as np

__all__ = ["mutate"]


def _with_crc(body: bytes) -> bytes:
    return body + struct.pack(">I", zlib.crc32(body))


def mutate(base: bytes, rng: np.random.Generator) -> bytes:
    """One mutated variant of the valid bitstream ``base``."""
    body = bytearray(base[:-4])
    kind = rng.integers(0, 6)
    if kind == 0:  # truncated
        return base[: rng.integers(0, len(base))]
    if kind == 1:  # flipped bits, checksum left stale
        out = bytearray(base)
        for _ in range(rng.integers(1, 9)):
            out[rng.integers(0, len(out))] ^= 1 << rng.integers(0, 8)
        return bytes(out)
    if kind == 2:  # flipped bits, checksum repaired
        for _ in range(rng.integers(1, 5)):
            body[rng.integers(0, len(body))] ^= 1 << rng.integers(0, 8)
        return _with_crc(bytes(body))
    if kind == 3:  # a header byte rewritten (sizes, counts, coder id, lengths), checksum repaired
        position = rng.integers(4, min(len(body), 64))
        body[position] = rng.integers(0, 256)
        return _with_crc(bytes(body))
    if kind == 4:  # bytes inserted or removed, checksum repaired
        position = rng.integers(0, len(body))
        if rng.random() < 0.5:
            del body[position : position + rng.integers(1, 8)]
        else:
            body[position:position] = rng.bytes(int(rng.integers(1, 8)))
        return _with_crc(bytes(body))
    random = rng.bytes(int(rng.integers(0, 200)))  # random, sometimes with our magic and a valid checksum
    return _with_crc(b"RGIC" + random) if rng.random() < 0.5 else random
