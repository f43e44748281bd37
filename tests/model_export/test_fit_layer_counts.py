"""Fitting the refinement layer's starting counts: what the fit writes is what the coder reads."""

from pathlib import Path

import numpy as np
from PIL import Image

from model_export.fit_layer_counts import module_text, starting_counts, tallies
from service.codec import coefficient_counts


def test_starting_counts_are_each_contexts_shares_in_halves_from_one_half() -> None:
    tally = np.array([[90, 10, 0, 0], [0, 0, 0, 0]])
    counts = starting_counts(tally, 16)
    np.testing.assert_array_equal(counts[0], [14.5, 1.5, 0.5, 0.5])  # 14.4 and 1.6 to the nearest half
    np.testing.assert_array_equal(counts[1], [0.5, 0.5, 0.5, 0.5])  # a context never seen: flat


def test_the_written_module_holds_the_counts_the_coder_reads(tmp_path: Path, kodak_image) -> None:
    path = tmp_path / "photo.png"
    Image.fromarray(np.ascontiguousarray(kodak_image[:96, :128])).save(path)
    counted = tallies([path])
    assert set(counted) == {"levels", "means", "rest"}
    assert counted["rest"][:, 0].sum() > counted["rest"][:, 1:].sum()  # mostly zeros
    counts = {name: starting_counts(tally, 256) for name, tally in counted.items()}
    namespace: dict = {}
    exec(module_text(counts, 1, 256), namespace)  # the module the fit writes
    for name, table in counts.items():
        np.testing.assert_array_equal(namespace[name.upper()], table)
        assert namespace[name.upper()].shape == getattr(coefficient_counts, name.upper()).shape
