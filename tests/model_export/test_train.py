import pytest

from model_export.train import learning_rate


def test_learning_rate_is_constant_then_halves_from_the_decay_start() -> None:
    assert learning_rate(10_000, 5e-4, 0.0) == 5e-4  # no half-life: constant
    assert learning_rate(900, 4e-4, 3000, decay_start=1000) == 4e-4
    assert learning_rate(4000, 4e-4, 3000, decay_start=1000) == pytest.approx(2e-4)
    assert learning_rate(7000, 4e-4, 3000, decay_start=1000) == pytest.approx(1e-4)
