"""The refinement layer's coefficient coder: exact round trips on what the layer produces and on
extremes, and fewer bytes than a general-purpose compressor on real residuals."""

import lzma

import numpy as np
import pytest

from service.codec import coefficient_coder, coefficient_counts, refinement
from service.errors import InvalidBitstream


def _round_trip(q: np.ndarray, levels: np.ndarray | None = None, trained: bool = False) -> bytes:
    """Both streams decode to ``q`` (and ``levels``); the first alone to its means, the rest zero."""
    means, rest = coefficient_coder.encode(q, levels, trained)
    regions = None if levels is None else levels.shape
    decoded, decoded_levels = coefficient_coder.decode(means, rest, *q.shape[1:3], regions, trained)
    np.testing.assert_array_equal(decoded, q)
    if levels is None:
        assert decoded_levels is None
    else:
        np.testing.assert_array_equal(decoded_levels, levels)
    only_means, first_levels = coefficient_coder.decode(means, None, *q.shape[1:3], regions, trained)
    expected = np.zeros_like(q)
    expected[..., 0, 0] = q[..., 0, 0]
    np.testing.assert_array_equal(only_means, expected)
    assert (first_levels is None) == (levels is None)
    return means + rest


@pytest.mark.parametrize("trained", [False, True])
@pytest.mark.parametrize("blocks", [(1, 1), (1, 7), (5, 1), (3, 4), (9, 13)])
def test_random_coefficients_round_trip_at_any_block_count(blocks: tuple[int, int], trained: bool) -> None:
    rng = np.random.default_rng(sum(blocks))
    q = np.round(rng.laplace(0, 3, (3, *blocks, 8, 8))).astype(np.int32)
    q[..., 0, 0] = rng.integers(-3000, 3000, (3, *blocks))
    _round_trip(q, None, trained)


@pytest.mark.parametrize("trained", [False, True])
@pytest.mark.parametrize("regions", [(1, 1), (2, 3), (5, 4)])
def test_the_adaptive_quantisers_levels_round_trip_before_the_coefficients(
    regions: tuple[int, int], trained: bool
) -> None:
    rng = np.random.default_rng(regions[0] * 10 + regions[1])
    q = np.round(rng.laplace(0, 2, (3, 4 * regions[0] - 1, 4 * regions[1], 8, 8))).astype(np.int32)
    levels = rng.integers(-4, 5, regions)
    _round_trip(q, levels, trained)


@pytest.mark.parametrize("trained", [False, True])
def test_extremes_round_trip(trained: bool) -> None:
    q = np.zeros((3, 4, 6, 8, 8), np.int32)
    _round_trip(q, None, trained)  # all zero
    q[0, 1, 2, 7, 7] = (1 << 15) - 1  # the largest the layer writes, in the last band
    q[1, 3, 5, 0, 1] = -((1 << 15) - 1)
    q[2, 0, 0, 0, 0] = 17  # exactly the escape
    q[2, 0, 1, 0, 0] = -16
    _round_trip(q, None, trained)


def test_real_residuals_cost_fewer_bytes_than_lzma(kodak_image) -> None:
    rgb = np.ascontiguousarray(kodak_image[:256, :384])
    trial = refinement.ResidualTransform.of(rgb, np.full_like(rgb, 128)).trial(6.0)
    payload = _round_trip(trial.quantised)
    planes = trial.quantised.astype("<i2").tobytes()
    assert len(payload) < 0.9 * len(lzma.compress(planes, preset=9 | lzma.PRESET_EXTREME))


def test_counts_started_from_the_trained_tables_cost_fewer_bytes_on_a_coarse_layer(kodak_image) -> None:
    """A layer at a coarse step is mostly zeros: from ½ each, every context pays to learn that."""
    rgb = np.ascontiguousarray(kodak_image)
    transform = refinement.ResidualTransform.of(rgb, np.full_like(rgb, 128))
    for step in (20.0, 150.0):
        trial = transform.trial(step)
        flat = _round_trip(trial.quantised, trial.levels, trained=False)
        trained = _round_trip(trial.quantised, trial.levels, trained=True)
        assert len(trained) < 0.95 * len(flat)
        # the tables are part of the format: the same bytes under the other counts are something else
        means, rest = coefficient_coder.encode(trial.quantised, trial.levels, trained=True)
        try:
            shape = trial.quantised.shape[1:3]
            misread, _ = coefficient_coder.decode(means, rest, *shape, trial.levels.shape)
        except InvalidBitstream:
            continue
        assert not np.array_equal(misread, trial.quantised)


def test_the_trained_tables_are_whole_halves_from_one_half_up() -> None:
    """Exact binary fractions, as every count must be for any machine to decode the same symbols."""
    for name, contexts in (("LEVELS", 14), ("MEANS", 28), ("REST", 56)):
        table = getattr(coefficient_counts, name)
        assert table.shape == (contexts, 18) and table.min() >= 0.5
        np.testing.assert_array_equal(table * 2, np.round(table * 2))
