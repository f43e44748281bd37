"""The Bjøntegaard delta rate against curves whose answer is known."""

import math

import pytest

from benchmarks.bdrate import bd_rate

RATES = [0.25, 0.5, 1.0, 2.0]
QUALITIES = [10.0, 13.0, 16.0, 19.0]  # log-rate linear in quality: cubic fits are exact


def test_identical_curves_differ_by_nothing() -> None:
    assert bd_rate(RATES, QUALITIES, RATES, QUALITIES) == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("factor", [0.5, 0.8, 1.25])
def test_a_curve_scaled_in_rate_differs_by_that_factor(factor: float) -> None:
    scaled = [r * factor for r in RATES]
    assert bd_rate(RATES, QUALITIES, scaled, QUALITIES) == pytest.approx(100 * (factor - 1), abs=1e-6)


def _rate(quality: float) -> float:
    """The reference curve's law: rate doubles every 3 quality units."""
    return 0.25 * 2 ** ((quality - 10.0) / 3.0)


def test_only_the_common_quality_range_counts_and_disjoint_curves_give_nan() -> None:
    qualities = [13.0, 16.0, 19.0, 22.0, 25.0]  # beyond the reference's 10..19: not integrated
    half = [0.5 * _rate(q) for q in qualities]
    assert bd_rate(RATES, QUALITIES, half, qualities) == pytest.approx(-50.0, abs=1e-6)
    assert math.isnan(bd_rate(RATES, QUALITIES, RATES, [q + 100 for q in QUALITIES]))
