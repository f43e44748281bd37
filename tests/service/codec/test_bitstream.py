import numpy as np
import pytest

from service.codec.bitstream import Bitstream
from service.codec.entropy import CODER_CONTEXT, CODER_RAW, encode_payload
from service.codec.patches import Geometry
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


def test_every_truncation_and_bit_flip_is_refused_cleanly() -> None:
    data = _stream().to_bytes()
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
