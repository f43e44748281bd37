"""The refinement layer's coefficient coder: exact round trips on what the layer produces and on
extremes, and fewer bytes than a general-purpose compressor on real residuals."""

import lzma

import numpy as np
import pytest

from service.codec import coefficient_coder, refinement


def _round_trip(q: np.ndarray, levels: np.ndarray | None = None) -> bytes:
    """Both streams decode to ``q`` (and ``levels``); the first alone to its means, the rest zero."""
    means, rest = coefficient_coder.encode(q, levels)
    regions = None if levels is None else levels.shape
    decoded, decoded_levels = coefficient_coder.decode(means, rest, *q.shape[1:3], regions)
    np.testing.assert_array_equal(decoded, q)
    if levels is None:
        assert decoded_levels is None
    else:
        np.testing.assert_array_equal(decoded_levels, levels)
    only_means, first_levels = coefficient_coder.decode(means, None, *q.shape[1:3], regions)
    expected = np.zeros_like(q)
    expected[..., 0, 0] = q[..., 0, 0]
    np.testing.assert_array_equal(only_means, expected)
    assert (first_levels is None) == (levels is None)
    return means + rest


@pytest.mark.parametrize("blocks", [(1, 1), (1, 7), (5, 1), (3, 4), (9, 13)])
def test_random_coefficients_round_trip_at_any_block_count(blocks: tuple[int, int]) -> None:
    rng = np.random.default_rng(sum(blocks))
    q = np.round(rng.laplace(0, 3, (3, *blocks, 8, 8))).astype(np.int32)
    q[..., 0, 0] = rng.integers(-3000, 3000, (3, *blocks))
    _round_trip(q)


@pytest.mark.parametrize("regions", [(1, 1), (2, 3), (5, 4)])
def test_the_adaptive_quantisers_levels_round_trip_before_the_coefficients(regions: tuple[int, int]) -> None:
    rng = np.random.default_rng(regions[0] * 10 + regions[1])
    q = np.round(rng.laplace(0, 2, (3, 4 * regions[0] - 1, 4 * regions[1], 8, 8))).astype(np.int32)
    levels = rng.integers(-4, 5, regions)
    _round_trip(q, levels)


def test_extremes_round_trip() -> None:
    q = np.zeros((3, 4, 6, 8, 8), np.int32)
    _round_trip(q)  # all zero
    q[0, 1, 2, 7, 7] = (1 << 15) - 1  # the largest the layer writes, in the last band
    q[1, 3, 5, 0, 1] = -((1 << 15) - 1)
    q[2, 0, 0, 0, 0] = 17  # exactly the escape
    q[2, 0, 1, 0, 0] = -16
    _round_trip(q)


def test_real_residuals_cost_fewer_bytes_than_lzma(kodak_image) -> None:
    rgb = np.ascontiguousarray(kodak_image[:256, :384])
    trial = refinement.ResidualTransform.of(rgb, np.full_like(rgb, 128)).trial(6.0)
    payload = _round_trip(trial.quantised)
    planes = trial.quantised.astype("<i2").tobytes()
    assert len(payload) < 0.9 * len(lzma.compress(planes, preset=9 | lzma.PRESET_EXTREME))
