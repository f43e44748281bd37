import numpy as np
import pytest

from service.codec.patches import Geometry
from service.codec.rate_control import (
    Target,
    composite,
    counts_for_threshold,
    local_quality,
    search_threshold,
)
from service.errors import BadParameter


def test_counts_follow_local_quality() -> None:
    table = np.array([[[0.5, 0.9]], [[0.8, 0.95]], [[0.85, 0.97]]])  # [N=3, 1, 2]
    assert counts_for_threshold(table, 0.9).tolist() == [[3, 1]]  # left never reaches 0.9 → all 3
    assert counts_for_threshold(table, 0.8).tolist() == [[2, 1]]


def test_search_threshold_for_quality_and_for_size() -> None:
    table = np.linspace(0.1, 1.0, 10)[:, None, None] * np.array([[1.0, 0.5]])[None]
    total = lambda counts: int(counts.sum())  # noqa: E731
    lowest = search_threshold(table, lambda c: total(c) >= 12)
    assert total(lowest) >= 12 and total(counts_for_threshold(table, table.min())) < 12
    highest = search_threshold(table, lambda c: total(c) <= 8, lowest=False)
    assert highest is not None and total(highest) <= 8
    assert search_threshold(table, lambda c: False) is None


def test_local_quality_ranks_a_busy_patch_below_a_flat_one_and_composite_picks_patches() -> None:
    rng = np.random.default_rng(0)
    geometry = Geometry(64, 32, patch_size=32, tile_size=64)
    reference = np.full((32, 64, 3), 120, np.uint8)
    reference[:, 32:] = rng.integers(0, 256, (32, 32, 3))
    blurred = reference.copy()
    blurred[:, 32:] = reference[:, 32:].mean(axis=(0, 1)).astype(np.uint8)
    recons = np.stack([blurred, reference])
    for kind in ("msssim", "psnr"):
        table = local_quality(reference, recons, geometry, kind)
        assert table.shape == (2, 1, 2)
        assert table[0, 0, 0] > table[0, 0, 1]  # the busy right patch is worse after iteration 1
    mixed = composite(recons, np.array([[1, 2]]), geometry)
    np.testing.assert_array_equal(mixed, reference)


@pytest.mark.parametrize(
    ("kind", "value"), [("msssim", 1.5), ("msssim", 0), ("psnr", -1), ("bpp", 0), ("size", 1)]
)
def test_bad_targets_are_refused(kind: str, value: float) -> None:
    with pytest.raises(BadParameter):
        Target(kind, value)  # type: ignore[arg-type]
