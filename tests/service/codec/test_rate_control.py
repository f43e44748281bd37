import pytest

from service.codec.rate_control import Target, fewest_iterations_meeting, most_iterations_within
from service.errors import BadParameter


def test_fewest_iterations_finds_the_first_that_meets_and_probes_few() -> None:
    quality = [0.5, 0.7, 0.8, 0.9, 0.93, 0.95, 0.96, 0.97]
    probed = []

    def at(n: int) -> float:
        probed.append(n)
        return quality[n - 1]

    assert fewest_iterations_meeting(at, Target("msssim", 0.95), 8) == (6, True)
    assert len(set(probed)) <= 4


def test_unreachable_quality_says_so() -> None:
    assert fewest_iterations_meeting(lambda n: 0.5, Target("msssim", 0.99), 8) == (8, False)


def test_bpp_takes_the_most_iterations_that_fit() -> None:
    assert most_iterations_within(lambda n: 1000 * n, 10_000, Target("bpp", 0.35), 16) == (3, True)
    assert most_iterations_within(lambda n: 1000 * n, 10_000, Target("bpp", 0.01), 16) == (1, False)


@pytest.mark.parametrize(
    ("kind", "value"), [("msssim", 1.5), ("msssim", 0), ("psnr", -1), ("bpp", 0), ("size", 1)]
)
def test_bad_targets_are_refused(kind: str, value: float) -> None:
    with pytest.raises(BadParameter):
        Target(kind, value)  # type: ignore[arg-type]
