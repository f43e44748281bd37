"""Bit-exact round trips of both entropy coders, on random, structured and edge-case codes."""

import numpy as np
import pytest

from service.codec.entropy import CODER_CONTEXT, CODER_RAW, decode_payload, encode_payload
from service.codec.pipeline import ImageCodec
from service.errors import InvalidBitstream

CODERS = [CODER_RAW, CODER_CONTEXT]


def _round_trip(coder: int, bits: np.ndarray, cells: np.ndarray) -> np.ndarray:
    out = decode_payload(coder, encode_payload(coder, bits, cells), cells, bits.shape[-1])
    expected = bits.copy()
    for t in range(bits.shape[0]):
        expected[t][cells <= t] = 0
    np.testing.assert_array_equal(out, expected)
    return out


@pytest.mark.parametrize("coder", CODERS)
@pytest.mark.parametrize("fill", ["all_minus", "all_plus", "single_plus", "random", "smooth"])
def test_round_trip_is_bit_exact(coder: int, fill: str) -> None:
    rng = np.random.default_rng(3)
    shape = (5, 7, 9, 32)
    bits = {
        "all_minus": np.full(shape, -1, np.int8),
        "all_plus": np.ones(shape, np.int8),
        "single_plus": np.full(shape, -1, np.int8),
        "random": rng.choice(np.array([-1, 1], np.int8), size=shape),
        "smooth": np.repeat(np.repeat(rng.choice(np.array([-1, 1], np.int8), (5, 2, 3, 32)), 4, 1), 3, 2)[
            :, :7
        ],
    }[fill]
    if fill == "single_plus":
        bits[2, 3, 4, 17] = 1
    cells = rng.integers(0, 6, shape[1:3])
    _round_trip(coder, bits, cells)


@pytest.mark.parametrize("coder", CODERS)
def test_single_cell_single_bit_and_empty(coder: int) -> None:
    _round_trip(coder, np.ones((1, 1, 1, 1), np.int8), np.ones((1, 1), int))
    _round_trip(coder, np.zeros((0, 2, 2, 32), np.int8), np.zeros((2, 2), int))


def test_context_coder_beats_raw_on_structured_codes() -> None:
    rng = np.random.default_rng(0)
    blocks = rng.choice(np.array([-1, 1], np.int8), (4, 8, 8, 32))
    bits = np.repeat(np.repeat(blocks, 4, 1), 4, 2)  # spatially redundant, as in flat image areas
    cells = np.full(bits.shape[1:3], 4)
    raw, coded = encode_payload(CODER_RAW, bits, cells), encode_payload(CODER_CONTEXT, bits, cells)
    assert len(coded) < 0.5 * len(raw)


def test_real_codes_round_trip(backend_client, kodak_image) -> None:
    version = backend_client.available_versions("residual_gru")[-1]
    crop = kodak_image[:128, :192][None]
    bits = ImageCodec(backend_client, "residual_gru").encode(crop[0], 5, version).bits
    cells = np.random.default_rng(1).integers(1, 6, (8, 12))
    for coder in CODERS:
        _round_trip(coder, bits, cells)


def test_garbage_payloads_are_invalid_not_crashes() -> None:
    cells = np.full((3, 3), 2)
    with pytest.raises(InvalidBitstream):
        decode_payload(CODER_RAW, b"\x00" * 3, cells, 32)
    with pytest.raises(InvalidBitstream):
        decode_payload(CODER_CONTEXT, b"\x01\x02\x03", cells, 32)
    with pytest.raises(InvalidBitstream):
        decode_payload(9, b"", cells, 32)
    decode_payload(CODER_CONTEXT, bytes(range(40)), cells, 32)  # arbitrary words decode to some bits
