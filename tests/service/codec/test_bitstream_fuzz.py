"""10,000 mutated, truncated and random bitstreams through the decoder: InvalidBitstream or bits."""

import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.codec.bitstream import Bitstream
from service.codec.entropy import decode_payload
from service.errors import InvalidBitstream
from tests.fuzzing import mutate


@pytest.fixture(scope="module")
def base(backend_client, kodak_image) -> bytes:
    from service.codec.pipeline import ImageCodec
    from service.codec.rate_control import Target

    codec = ImageCodec(backend_client, "residual_gru", patch_size=32, tile_size=64)
    return codec.compress(np.ascontiguousarray(kodak_image[:40, :72]), Target("bpp", 0.8)).bitstream


def _decode(data: bytes) -> None:
    stream = Bitstream.from_bytes(data)
    cells = stream.geometry.cell_iterations(stream.patch_iterations)
    if stream.width * stream.height <= 1_000_000 and cells.max(initial=0) <= 16:  # the service's limits
        decode_payload(stream.coder_id, stream.payload, cells, stream.bits_per_cell)


@settings(max_examples=10_000, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**63 - 1))
def test_decoder_survives_mutations(base: bytes, seed: int) -> None:
    data = mutate(base, np.random.default_rng(seed))
    start = time.perf_counter()
    try:
        _decode(data)
    except InvalidBitstream as error:
        assert error.message
    assert time.perf_counter() - start < 5


@settings(max_examples=500, deadline=None)
@given(data=st.binary(max_size=300))
def test_decoder_survives_arbitrary_bytes(data: bytes) -> None:
    with pytest.raises(InvalidBitstream):
        _decode(data)
