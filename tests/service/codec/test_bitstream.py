import dataclasses
import struct
import zlib

import numpy as np
import pytest

from service.codec.bitstream import Bitstream, declared_pixels
from service.codec.entropy import CODER_CONTEXT, CODER_RAW, encode_payload
from service.codec.patches import Geometry
from service.codec.postfilters import WRITTEN, Postfilters
from service.errors import InvalidBitstream


def _stream(width: int = 100, height: int = 70, iterations: int = 3, seed: int = 0) -> Bitstream:
    rng = np.random.default_rng(seed)
    geometry = Geometry(width, height, patch_size=32, tile_size=64)
    counts = rng.integers(0, iterations + 1, geometry.patches).astype(np.uint8)
    cells = geometry.cell_iterations(counts)
    bits = rng.choice(np.array([-1, 1], np.int8), size=(iterations, *geometry.cells, 8))
    payload = encode_payload(CODER_CONTEXT, bits, cells)
    return Bitstream("residual_gru", 3, width, height, 32, 64, 8, counts, payload, coder_id=CODER_CONTEXT)


def test_round_trip_preserves_every_field() -> None:
    stream = _stream()
    parsed = Bitstream.from_bytes(stream.to_bytes())
    assert parsed.model_name == "residual_gru" and parsed.model_version == 3
    assert (parsed.width, parsed.height, parsed.patch_size, parsed.tile_size) == (100, 70, 32, 64)
    np.testing.assert_array_equal(parsed.patch_iterations, stream.patch_iterations)
    assert parsed.payload == stream.payload


def test_a_refinement_layer_makes_format_11_and_round_trips() -> None:
    plain = _stream()
    assert (
        plain.format_version == 10
        and plain.postfilters == Postfilters.DEBLOCK_AND_CHROMA == WRITTEN
        and plain.steps == int(plain.patch_iterations.max())
    )
    refined = dataclasses.replace(plain, refinement=b"layer bytes")
    parsed = Bitstream.from_bytes(refined.to_bytes())
    assert parsed.format_version == 11 and parsed.refinement == b"layer bytes" and parsed.layer_format == 8
    assert parsed.steps == plain.steps + 1 and parsed.payload == plain.payload
    assert parsed.postfilters == Postfilters.DEBLOCK_AND_CHROMA
    # format 8 (deblocked, no chroma filter) layered is format 9, whose layer is format 7's
    deblocked = Bitstream.from_bytes(dataclasses.replace(plain, format_version=8, refinement=b"x").to_bytes())
    assert deblocked.format_version == 9 and deblocked.layer_format == 7
    assert deblocked.postfilters == Postfilters.DEBLOCK
    assert Bitstream.from_bytes(plain.to_bytes()).refinement == b""
    assert len(plain.to_bytes()) == len(
        dataclasses.replace(plain, format_version=3).to_bytes()
    )  # no new field
    older = dataclasses.replace(
        plain, format_version=3, refinement=b"layer bytes"
    )  # a format-3 stream layered
    assert older.format_version == 7 and older.postfilters == Postfilters.NONE
    for version in (4, 5, 6, 7):
        older = Bitstream.from_bytes(dataclasses.replace(refined, format_version=version).to_bytes())
        assert older.format_version == version and older.refinement == b"layer bytes"


@pytest.mark.parametrize("refinement", [b"", b"layer"])
def test_every_truncation_and_bit_flip_is_refused_cleanly(refinement: bytes) -> None:
    data = dataclasses.replace(_stream(), refinement=refinement).to_bytes()
    for cut in range(len(data)):
        with pytest.raises(InvalidBitstream):
            Bitstream.from_bytes(data[:cut])
    for position in range(0, len(data), 7):
        corrupt = bytearray(data)
        corrupt[position] ^= 0x10
        with pytest.raises(InvalidBitstream):
            Bitstream.from_bytes(bytes(corrupt))


def test_version_1_bitstreams_still_parse_and_must_be_raw() -> None:
    stream = _stream()
    raw = Bitstream(**{**stream.__dict__, "coder_id": CODER_RAW, "format_version": 1})
    assert Bitstream.from_bytes(raw.to_bytes()).format_version == 1
    mixed = Bitstream(**{**stream.__dict__, "format_version": 1})  # v1 had no context coder
    with pytest.raises(InvalidBitstream, match="not defined"):
        Bitstream.from_bytes(mixed.to_bytes())


def _recrc(body: bytes) -> bytes:
    return body + struct.pack(">I", zlib.crc32(body))


def test_format_2_counts_stay_readable_and_format_3_packs_them() -> None:
    stream = _stream(width=640, height=480)
    uniform = Bitstream(**{**stream.__dict__, "patch_iterations": np.full_like(stream.patch_iterations, 3)})
    v2 = Bitstream(**{**uniform.__dict__, "format_version": 2})
    parsed = Bitstream.from_bytes(v2.to_bytes())
    assert parsed.format_version == 2
    np.testing.assert_array_equal(parsed.patch_iterations, uniform.patch_iterations)
    patches = uniform.patch_iterations.size  # 300
    assert len(uniform.to_bytes()) < len(v2.to_bytes()) - patches + 20


def test_counts_that_inflate_to_the_wrong_size_or_not_at_all_are_refused() -> None:
    stream = _stream()
    data = stream.to_bytes()
    head = data.index(zlib.compress(stream.patch_iterations.tobytes(), 9)) - 2
    (length,) = struct.unpack(">H", data[head : head + 2])
    tail = data[head + 2 + length : -4]
    for packed in (zlib.compress(b"\x01" * (stream.patch_iterations.size + 1)), b"\x78\x9c garbage"):
        with pytest.raises(InvalidBitstream, match="iteration counts"):
            Bitstream.from_bytes(_recrc(data[:head] + struct.pack(">H", len(packed)) + packed + tail))


def test_declared_pixels_reads_the_header_alone() -> None:
    stream = Bitstream(
        model_name="residual_gru",
        model_version=4,
        width=70,
        height=33,
        patch_size=32,
        tile_size=1024,
        bits_per_cell=32,
        patch_iterations=np.ones((2, 3), np.uint8),
        payload=b"\x00" * 10,
    ).to_bytes()
    assert declared_pixels(stream) == 70 * 33
    assert declared_pixels(stream[:30]) == 70 * 33  # truncated just after the size: still read
    assert declared_pixels(b"not a bitstream") == 0 and declared_pixels(stream[:9]) == 0
