import numpy as np
import pytest

from service.codec.bitstream import Bitstream, pack_bits, unpack_bits
from service.codec.patches import Geometry
from service.errors import InvalidBitstream


def _stream(width: int = 100, height: int = 70, iterations: int = 3, seed: int = 0) -> Bitstream:
    rng = np.random.default_rng(seed)
    geometry = Geometry(width, height, patch_size=32, tile_size=64)
    counts = rng.integers(0, iterations + 1, geometry.patches).astype(np.uint8)
    cells = geometry.cell_iterations(counts)
    bits = rng.choice(np.array([-1, 1], np.int8), size=(iterations, *geometry.cells, 8))
    return Bitstream("residual_gru", 3, width, height, 32, 64, 8, counts, pack_bits(bits, cells))


def test_round_trip_preserves_every_field() -> None:
    stream = _stream()
    parsed = Bitstream.from_bytes(stream.to_bytes())
    assert parsed.model_name == "residual_gru" and parsed.model_version == 3
    assert (parsed.width, parsed.height, parsed.patch_size, parsed.tile_size) == (100, 70, 32, 64)
    np.testing.assert_array_equal(parsed.patch_iterations, stream.patch_iterations)
    assert parsed.payload == stream.payload


@pytest.mark.parametrize("counts", ["zeros", "ones", "random"])
def test_pack_unpack_is_exact_and_zeroes_finished_cells(counts: str) -> None:
    rng = np.random.default_rng(1)
    cells = {
        "zeros": np.zeros((3, 5), int),
        "ones": np.ones((3, 5), int),
        "random": rng.integers(0, 5, (3, 5)),
    }[counts]
    total = int(cells.max(initial=0))
    bits = rng.choice(np.array([-1, 1], np.int8), size=(total, 3, 5, 32))
    out = unpack_bits(pack_bits(bits, cells), cells, 32)
    assert out.shape == bits.shape
    for t in range(total):
        active = cells > t
        np.testing.assert_array_equal(out[t][active], bits[t][active])
        assert np.all(out[t][~active] == 0)


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


def test_wrong_payload_length_is_refused() -> None:
    cells = np.ones((2, 2), int)
    with pytest.raises(InvalidBitstream, match="payload"):
        unpack_bits(b"\x00" * 3, cells, 32)
