"""The learned context model: its plane-wise logits equal the feature-by-feature definition."""

import numpy as np
import pytest

from service.codec.context_model import ContextModel, feature_count, feature_rows, sigmoid_table
from tests.service.codec.test_entropy import random_context_model


@pytest.mark.parametrize("channels", [32, 5])
def test_coding_probabilities_follow_the_listed_features(channels: int) -> None:
    rng = np.random.default_rng(channels)
    bits = rng.choice(np.array([-1, 1], np.int8), (4, 6, 7, channels))
    cells = np.full((6, 7), 4)
    model = random_context_model(channels, iterations=3)  # iteration 3 reuses the weights of 2
    seen = 0
    for t, c, mask, probability in model.groups(bits, cells):
        k = min(t, 2)
        logits = feature_rows(bits, t, c)[mask.reshape(-1)] @ model.weights[k, c] + model.biases[k, c]
        np.testing.assert_array_equal(probability, model._probabilities(logits.astype(np.float64)))
        seen += int(mask.sum())
    assert seen == bits.size


def test_groups_skip_cells_past_their_count() -> None:
    bits = np.ones((3, 4, 4, 32), np.int8)
    cells = np.zeros((4, 4), int)
    cells[0, 0] = 2
    coded = sum(int(mask.sum()) for _, _, mask, _ in random_context_model().groups(bits, cells))
    assert coded == 2 * 32


def test_probabilities_are_exact_16_bit_fractions_inside_the_open_interval() -> None:
    table = sigmoid_table()
    assert table.min() >= 1 and table.max() <= 65535
    assert np.all(np.diff(table) >= 0)
    model = random_context_model()
    p = model._probabilities(np.array([-1e9, -300.0, 0.0, 300.0, 1e9]))
    assert np.all((p > 0) & (p < 1)) and np.all(p * 65536 == np.round(p * 65536))


def test_malformed_context_models_are_refused() -> None:
    good = random_context_model()
    with pytest.raises(ValueError):
        ContextModel(good.weights[..., :-1], good.biases, good.table)
    with pytest.raises(ValueError):
        ContextModel(good.weights, good.biases, np.zeros(1024, np.int64))
    with pytest.raises(ValueError):
        ContextModel(good.weights * 10_000, good.biases, good.table)
    assert feature_count(32) == good.weights.shape[-1] == 156
