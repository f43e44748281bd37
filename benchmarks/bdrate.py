"""Bjøntegaard delta rate (VCEG-M33): average % bitrate change at equal quality."""

from __future__ import annotations

import numpy as np

__all__ = ["bd_rate"]


def bd_rate(
    rate_ref: list[float], quality_ref: list[float], rate_test: list[float], quality_test: list[float]
) -> float:
    """% bitrate of ``test`` against ``ref`` over their common quality range (negative: test is smaller).

    Cubic fits of log-rate as a function of quality, integrated over the overlap, as in VCEG-M33.
    Points are sorted by quality; NaN when the curves do not overlap.
    """

    def prepare(rate: list[float], quality: list[float]) -> tuple[np.ndarray, np.ndarray]:
        q, r = np.asarray(quality, float), np.log(np.asarray(rate, float))
        order = np.argsort(q)
        return q[order], r[order]

    q1, r1 = prepare(rate_ref, quality_ref)
    q2, r2 = prepare(rate_test, quality_test)
    low, high = max(q1.min(), q2.min()), min(q1.max(), q2.max())
    if not high > low:
        return float("nan")
    p1 = np.polyint(np.polyfit(q1, r1, 3))
    p2 = np.polyint(np.polyfit(q2, r2, 3))
    mean1 = (np.polyval(p1, high) - np.polyval(p1, low)) / (high - low)
    mean2 = (np.polyval(p2, high) - np.polyval(p2, low)) / (high - low)
    return float((np.exp(mean2 - mean1) - 1.0) * 100.0)
