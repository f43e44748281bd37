"""Smoothing the 8-px grid where it is a coding artefact, not the picture: H.264's normal-strength edge
filter on the two pixels either side of each grid line, only where both sides are flat and the step
across is small. The refinement layer runs it on its 8×8 blocks (thresholds in units of its step); from
bitstream format 8 the receiver runs it on the network's image too (fixed thresholds)."""

from __future__ import annotations

import numpy as np

__all__ = ["NETWORK_THRESHOLDS", "deblock", "deblock_network"]

#: The network's image (edge step, flatness, largest change, in pixel levels). On the 8 network-coded images
#: of 12 Kodak images at MS-SSIM 0.95: blocking on the 8-px grid +0.260 -> +0.030, MS-SSIM 0.95047 ->
#: 0.95033 (a sweep of thresholds in docs/decisions.md 34).
NETWORK_THRESHOLDS = (24, 7, 5)
PERIOD = 8
#: Rows of the network's image deblocked at a time (its int16 copy of a 6000-px-wide band: 9 MB, in cache
#: where a 24 MP image's 144 MB took 1.8 s to convert, filter and clip; the same pixels in bands: 0.8 s)
_BAND_ROWS = 256


def _columns(image: np.ndarray, edge: int, flat: int, most: int, first: int = PERIOD) -> None:
    """Smooth the edges between columns e−1 and e of int16 ``image`` [H,W,3] in place (e = ``first``,
    ``first`` + 8, ... below W−1; ``first`` ≥ 2), where the step across is below ``edge`` and each side is
    flat within ``flat``; the two pixels move at most ``most`` towards each other."""
    width = image.shape[1]
    # strided views of the two columns either side of each edge: no gathered copies
    p1, p0, q0, q1 = (image[:, first + d : width - 1 + d : PERIOD] for d in (-2, -1, 0, 1))
    filtered = (np.abs(p0 - q0) < edge) & (np.abs(p1 - p0) < flat) & (np.abs(q1 - q0) < flat)
    delta = np.where(filtered, np.clip((4 * (q0 - p0) + (p1 - q1) + 4) >> 3, -most, most), 0)
    p0 += delta
    q0 -= delta


def deblock(image: np.ndarray, edge: int, flat: int, most: int) -> None:
    """Filter int16 ``image`` [H,W,3] in place across vertical, then horizontal 8-px grid lines."""
    _columns(image, edge, flat, most)
    _columns(image.transpose(1, 0, 2), edge, flat, most)


def deblock_network(image: np.ndarray) -> np.ndarray:
    """The network's uint8 image [H,W,3] as a format-8 receiver shows it: :func:`deblock` with
    ``NETWORK_THRESHOLDS``, in bands of rows that start 4 rows past the grid, so that the four rows of
    each horizontal edge lie in one band."""
    height = image.shape[0]
    starts = [0, *range(PERIOD // 2 + _BAND_ROWS, height, _BAND_ROWS)]
    out = np.empty_like(image)
    for top, bottom in zip(starts, [*starts[1:], height], strict=True):
        work = image[top:bottom].astype(np.int16)
        _columns(work, *NETWORK_THRESHOLDS)
        _columns(work.transpose(1, 0, 2), *NETWORK_THRESHOLDS, first=PERIOD - top % PERIOD)
        out[top:bottom] = np.clip(work, 0, 255, out=work)
    return out
