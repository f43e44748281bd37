"""CIELAB and CIEDE2000 against published values."""

import numpy as np
import pytest

from service.codec.colour import ciede2000, srgb_to_lab

# Sharma, Wu and Dalal (2005), table 1: pairs of Lab colours and their CIEDE2000 difference.
SHARMA = [
    ((50.0, 2.6772, -79.7751), (50.0, 0.0, -82.7485), 2.0425),
    ((50.0, 3.1571, -77.2803), (50.0, 0.0, -82.7485), 2.8615),
    ((50.0, 2.5, 0.0), (50.0, 0.0, -2.5), 4.3065),
    ((50.0, 2.5, 0.0), (73.0, 25.0, -18.0), 27.1492),
    ((60.2574, -34.0099, 36.2677), (60.4626, -34.1751, 39.4387), 1.2644),
    ((22.7233, 20.0904, -46.694), (23.0331, 14.973, -42.5619), 2.0373),
    ((2.0776, 0.0795, -1.135), (0.9033, -0.0636, -0.5514), 0.9082),
]


@pytest.mark.parametrize(("lab1", "lab2", "expected"), SHARMA)
def test_ciede2000_matches_the_published_pairs(lab1, lab2, expected) -> None:
    assert float(ciede2000(np.array(lab1), np.array(lab2))) == pytest.approx(expected, abs=1e-4)


def test_lab_of_white_black_and_grey() -> None:
    np.testing.assert_allclose(srgb_to_lab(np.array([255, 255, 255], np.uint8)), [100, 0, 0], atol=1e-3)
    np.testing.assert_allclose(srgb_to_lab(np.array([0, 0, 0], np.uint8)), [0, 0, 0], atol=1e-6)
    assert srgb_to_lab(np.array([119, 119, 119], np.uint8))[0] == pytest.approx(50.0, abs=0.5)
