"""benchmarks.perceptual: the smallest classic file reaching a score, and the summary table."""

import numpy as np

from benchmarks.perceptual import ClassicPoint, PerceptualRow, _Scored, bytes_reaching, summary


def test_the_smallest_file_reaching_a_score(kodak_image: np.ndarray) -> None:
    scored = _Scored("JPEG 4:2:0", np.ascontiguousarray(kodak_image[:96, :128]))
    size, quality = bytes_reaching(scored, 60.0)
    assert scored.at(quality) == (size, scored.at(quality)[1]) and scored.at(quality)[1] >= 60.0
    assert all(s >= size for s, score in scored.points.values() if score >= 60.0)
    if quality > 0:
        assert scored.at(quality - 1)[1] < 60.0 or scored.at(quality - 1)[0] >= size
    assert bytes_reaching(scored, 101.0) is None


def test_summary_counts_and_means() -> None:
    rows = [
        PerceptualRow(
            "a", 30.0, 1000, 30.5, 0.95, "layer", {}, True, 1.0, {"WebP": ClassicPoint(1200, 40, 28.0)}
        ),
        PerceptualRow(
            "b", 30.0, 2000, 31.0, 0.96, "network", {}, True, 1.0, {"WebP": ClassicPoint(None, None, 35.0)}
        ),
    ]
    table = summary(rows, "Test")
    assert "| 30 | 2 | 2 | 3,000 |" in table and "1.200 (1)" in table and "| 1 / 1 |" in table
