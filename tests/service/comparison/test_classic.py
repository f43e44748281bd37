"""The classic codecs: the largest quality within a byte budget, and files told apart by their bytes."""

import numpy as np
import pytest

from service.comparison.classic import CLASSIC_CODECS, encode, largest_within, media_type


@pytest.mark.parametrize("name", list(CLASSIC_CODECS))
def test_largest_within_fits_and_one_quality_more_does_not(name: str, kodak_image: np.ndarray) -> None:
    # JPEG XL's sizes do not always rise with quality on smaller crops (q56 above q58 at 128×192)
    rgb = np.ascontiguousarray(kodak_image[:256, :384])
    budget = len(encode(name, rgb, 60).data) + 1
    found = largest_within(name, rgb, budget)
    assert found is not None and len(found.data) <= budget and found.quality >= 60
    if found.quality < 100:
        assert len(encode(name, rgb, found.quality + 1).data) > budget
    assert found.decoded.shape == rgb.shape
    assert media_type(found.data) == CLASSIC_CODECS[name].media_type


def test_nothing_fits_a_budget_below_the_lowest_quality(kodak_image: np.ndarray) -> None:
    assert largest_within("JPEG 4:2:0", np.ascontiguousarray(kodak_image[:128, :192]), 100) is None


def test_other_bytes_are_not_a_classic_image() -> None:
    assert media_type(b"RGIC\x00\x01") is None and media_type(b"") is None
