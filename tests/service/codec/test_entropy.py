"""Bit-exact round trips of every entropy coder, on random, structured and edge-case codes."""

import numpy as np
import pytest

from service.codec.context_model import ContextModel, feature_count, sigmoid_table
from service.codec.entropy import (
    CODER_CONTEXT,
    CODER_LEARNED,
    CODER_RAW,
    decode_payload,
    encode_payload,
    encode_prefix_payloads,
)
from service.codec.pipeline import ImageCodec
from service.errors import InvalidBitstream

CODERS = [CODER_RAW, CODER_CONTEXT, CODER_LEARNED]


def random_context_model(channels: int = 32, iterations: int = 3, seed: int = 0) -> ContextModel:
    """Integer weights of the size fitted models have, at random."""
    rng = np.random.default_rng(seed)
    return ContextModel(
        weights=rng.integers(-200, 200, (iterations, channels, feature_count(channels))),
        biases=rng.integers(-300, 300, (iterations, channels)),
        table=sigmoid_table().astype(np.int64),
    )


def _round_trip(
    coder: int, bits: np.ndarray, cells: np.ndarray, model: ContextModel | None = None
) -> np.ndarray:
    if coder == CODER_LEARNED and model is None:
        model = random_context_model(bits.shape[-1])
    payload = encode_payload(coder, bits, cells, model)
    out = decode_payload(coder, payload, cells, bits.shape[-1], model)
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


@pytest.mark.parametrize("coder", CODERS)
def test_every_prefix_in_one_pass_is_the_prefix_coded_alone(coder: int) -> None:
    rng = np.random.default_rng(4)
    bits = rng.choice(np.array([-1, 1], np.int8), size=(6, 5, 7, 32))
    cells = rng.integers(0, 6, (5, 7))  # cells stop at every count from 0 to 5
    cells[1] = 3  # and none runs the 6th iteration: the last prefix is the whole
    model = random_context_model(iterations=4) if coder == CODER_LEARNED else None
    prefixes = encode_prefix_payloads(coder, bits, cells, model)
    assert len(prefixes) == 6
    for k, payload in enumerate(prefixes, start=1):
        assert payload == encode_payload(coder, bits[:k], np.minimum(cells, k), model)


def test_context_coder_beats_raw_on_structured_codes() -> None:
    rng = np.random.default_rng(0)
    blocks = rng.choice(np.array([-1, 1], np.int8), (4, 8, 8, 32))
    bits = np.repeat(np.repeat(blocks, 4, 1), 4, 2)  # spatially redundant, as in flat image areas
    cells = np.full(bits.shape[1:3], 4)
    raw, coded = encode_payload(CODER_RAW, bits, cells), encode_payload(CODER_CONTEXT, bits, cells)
    assert len(coded) < 0.5 * len(raw)


def test_real_codes_round_trip_and_the_shipped_context_model_pays(backend_client, kodak_image) -> None:
    version = backend_client.available_versions("residual_gru")[-1]
    crop = kodak_image[:128, :192][None]
    codec = ImageCodec(backend_client, "residual_gru")
    bits = codec.encode(crop[0], 5, version).bits
    shipped = codec.context_model(version)
    assert shipped is not None, "the newest shipped model carries a context model"
    cells = np.random.default_rng(1).integers(1, 6, (8, 12))
    for coder in CODERS:
        _round_trip(coder, bits, cells, shipped)
    uniform = np.full((8, 12), 5)
    sizes = {c: len(encode_payload(c, bits, uniform, shipped)) for c in CODERS}
    assert sizes[CODER_LEARNED] < sizes[CODER_CONTEXT] < sizes[CODER_RAW]


def test_garbage_payloads_are_invalid_not_crashes() -> None:
    cells = np.full((3, 3), 2)
    with pytest.raises(InvalidBitstream):
        decode_payload(CODER_RAW, b"\x00" * 3, cells, 32)
    with pytest.raises(InvalidBitstream):
        decode_payload(CODER_CONTEXT, b"\x01\x02\x03", cells, 32)
    with pytest.raises(InvalidBitstream):
        decode_payload(9, b"", cells, 32)
    with pytest.raises(InvalidBitstream):  # coder 2 without the model version's context model
        decode_payload(CODER_LEARNED, bytes(8), cells, 32)
    decode_payload(CODER_CONTEXT, bytes(range(40)), cells, 32)  # arbitrary words decode to some bits
    decode_payload(CODER_LEARNED, bytes(range(40)), cells, 32, random_context_model())
