import numpy as np
import pytest

from service.codec.patches import Geometry
from service.codec.rate_control import PRESETS, QualityTable, Target, allocate, choose_target, parse_target
from service.errors import BadParameter


def _table(errors: np.ndarray) -> QualityTable:
    """A PSNR-only table: ``errors`` [N, py, px] squared-error sums (MS-SSIM terms all perfect)."""
    n, py, px = errors.shape
    return QualityTable(
        msssim_sums=np.ones((n, py, px, 3, 5)),
        positions=np.full(5, py * px),
        squared_errors=errors.astype(np.float64),
        samples=py * px * 100,
    )


def test_quality_table_sums_cells_into_patches_and_estimates_psnr() -> None:
    geometry = Geometry(48, 32, patch_size=32, tile_size=64)  # 2×3 cells, 1×2 patches (2×2 and 2×1 cells)
    cells = np.arange(2 * 2 * 3, dtype=np.float64).reshape(2, 2, 3)  # [N=2, cy, cx]
    sums = np.ones((2, 2, 3, 3, 5))
    table = QualityTable.from_cells(sums, np.ones((2, 3, 5)), cells, geometry)
    assert table.squared_errors.tolist() == [[[0 + 1 + 3 + 4, 2 + 5]], [[6 + 7 + 9 + 10, 8 + 11]]]
    assert table.positions.tolist() == [6.0] * 5 and table.samples == 48 * 32 * 3
    mixed = np.array([[2, 1]])
    mse = (32 + 7) / (48 * 32 * 3)
    assert table.psnr(mixed) == pytest.approx(10 * np.log10(255**2 / mse))
    assert table.msssim(mixed) == pytest.approx(1.0)  # every term is 1


def test_msssim_estimate_leaves_out_scales_without_positions() -> None:
    table = QualityTable(
        msssim_sums=np.full((1, 1, 1, 3, 5), 0.5),
        positions=np.array([1, 1, 1, 0, 0.0]),
        squared_errors=np.zeros((1, 1, 1)),
        samples=3,
    )
    assert table.msssim(np.ones((1, 1), int)) == pytest.approx(0.5)  # renormalised weights sum to 1


def test_the_first_iterations_of_a_table_estimate_as_the_whole_table_did_and_no_further() -> None:
    errors = np.array([[[1.0, 400.0]], [[0.9, 200.0]], [[0.8, 100.0]], [[0.7, 50.0]]])
    table, first = _table(errors), _table(errors).first(2)
    assert first.iterations == 2
    for counts in (np.array([[1, 2]]), np.array([[2, 2]])):
        assert first.psnr(counts) == table.psnr(counts)
    assert first.psnr(np.array([[4, 4]])) == table.psnr(np.array([[2, 2]]))  # clipped to what it holds


def test_allocate_gives_iterations_where_they_buy_the_most_quality() -> None:
    # Patch 0 is flat (one iteration is enough), patch 1 is busy (error falls slowly).
    errors = np.array([[[1.0, 400.0]], [[0.9, 200.0]], [[0.8, 100.0]], [[0.7, 50.0]]])
    table = _table(errors)
    cost = np.array([[10, 10]])
    target = table.psnr(np.array([[1, 4]]))
    counts = allocate(table, "psnr", cost, lambda c: table.psnr(c) >= target)
    assert counts is not None and counts.tolist() == [[1, 4]]  # fewer bits than uniform 4
    assert table.psnr(np.full((1, 2), 3)) < target  # and uniform 3 would not do


def test_allocate_for_a_size_and_when_nothing_is_acceptable() -> None:
    errors = np.array([[[100.0, 400.0]], [[50.0, 200.0]], [[25.0, 100.0]]])
    table = _table(errors)
    cost = np.array([[10, 10]])
    bits = lambda c: int((c * cost).sum())  # noqa: E731
    largest = allocate(table, "psnr", cost, lambda c: bits(c) <= 40, fewest_bits=False)
    assert largest is not None and bits(largest) == 40 and largest[0, 1] >= largest[0, 0]
    assert allocate(table, "psnr", cost, lambda c: False) is None
    assert allocate(table, "psnr", cost, lambda c: bits(c) <= 5, fewest_bits=False) is None


@pytest.mark.parametrize(
    ("kind", "value"), [("msssim", 1.5), ("msssim", 0), ("psnr", -1), ("bpp", 0), ("size", 1)]
)
def test_bad_targets_are_refused(kind: str, value: float) -> None:
    with pytest.raises(BadParameter):
        Target(kind, value)  # type: ignore[arg-type]


def test_choose_target_takes_one_target_a_named_level_or_the_default() -> None:
    default = Target("ssimulacra2", 70.0)
    none = {"ssimulacra2": None, "quality": None, "msssim": None}
    assert choose_target(none, default) == default
    assert choose_target({**none, "quality": "low"}, default) == Target("ssimulacra2", PRESETS["low"])
    assert choose_target({**none, "msssim": 0.95}, default) == Target("msssim", 0.95)
    with pytest.raises(BadParameter, match="one target"):
        choose_target({**none, "msssim": 0.95, "ssimulacra2": 50.0}, default)
    with pytest.raises(BadParameter, match="unknown quality"):
        choose_target({**none, "quality": "great"}, default)


def test_parse_target_reads_kind_value_and_named_levels() -> None:
    assert parse_target("msssim=0.95") == Target("msssim", 0.95)
    assert parse_target("visually-lossless") == Target("ssimulacra2", 90.0)
    for bad in ("ssimulacra2=high", "size=3", "ssimulacra2=120"):
        with pytest.raises(BadParameter):
            parse_target(bad)


def test_allocate_respects_a_per_patch_minimum() -> None:
    errors = np.array([[[1.0, 50.0]], [[0.5, 5.0]], [[0.4, 1.0]]])  # patch 0 is easy, patch 1 busy
    table = _table(errors)
    cost = np.ones((1, 2))
    target = table.psnr(np.array([[1, 3]]))
    free = allocate(table, "psnr", cost, lambda c: table.psnr(c) >= target)
    floored = allocate(table, "psnr", cost, lambda c: table.psnr(c) >= target, minimum=np.array([[2, 1]]))
    assert free.tolist() == [[1, 3]]
    assert floored.tolist() == [[2, 3]]
