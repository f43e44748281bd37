"""Rate control: how many iterations each patch receives to meet a quality or size target.

Spatially adaptive allocation (after Johnston et al. 2018): from one encode that records every
patch's reconstruction after every iteration, each patch gets the fewest iterations whose *local*
quality reaches a threshold τ; τ is searched so that the whole image meets the requested MS-SSIM
or PSNR, or the bitstream meets the requested size. Flat patches stop early, busy ones go on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np

from service.codec.patches import Geometry
from service.errors import BadParameter

__all__ = [
    "Target",
    "composite",
    "counts_for_threshold",
    "local_quality",
    "search_threshold",
]

TargetKind = Literal["msssim", "psnr", "bpp"]

_SSIM_WINDOW = 8
_C1, _C2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2


@dataclass(frozen=True)
class Target:
    """What the client asked for: a minimum MS-SSIM or PSNR (dB), or a maximum bits per pixel."""

    kind: TargetKind
    value: float

    def __post_init__(self) -> None:
        limits = {"msssim": (0.0, 1.0), "psnr": (0.0, 100.0), "bpp": (0.0, 24.0)}
        if self.kind not in limits:
            raise BadParameter(f"unknown target kind {self.kind!r}; use msssim, psnr or bpp")
        low, high = limits[self.kind]
        if not (low < self.value <= high):
            raise BadParameter(f"{self.kind} must be in ({low}, {high}], got {self.value}")

    def met_by(self, achieved: float) -> bool:
        return achieved <= self.value if self.kind == "bpp" else achieved >= self.value


def _box_mean(x: np.ndarray, size: int) -> np.ndarray:
    """Mean over size×size windows ('valid'), on the last two axes, via summed-area tables."""
    s = np.cumsum(np.cumsum(x, axis=-2), axis=-1)
    s = np.pad(s, [(0, 0)] * (x.ndim - 2) + [(1, 0), (1, 0)])
    total = s[..., size:, size:] - s[..., :-size, size:] - s[..., size:, :-size] + s[..., :-size, :-size]
    return total / (size * size)


def _luma(rgb: np.ndarray) -> np.ndarray:
    return rgb.astype(np.float64) @ np.array([0.299, 0.587, 0.114])


def local_quality(
    reference: np.ndarray, reconstructions: np.ndarray, geometry: Geometry, kind: str
) -> np.ndarray:
    """Quality of every patch after every iteration, [N, patches_y, patches_x]; higher is better.

    MS-SSIM targets use the mean SSIM (luma, 8×8 windows) of the patch, PSNR targets the patch's
    negative MSE. ``reconstructions`` are [N, H, W, 3] at the original size.
    """
    patch = geometry.patch_size
    py, px = geometry.patches
    if kind == "psnr":
        error = np.square(reconstructions.astype(np.float64) - reference.astype(np.float64)).mean(axis=-1)
        values = error
    else:
        x, y = _luma(reference)[None], _luma(reconstructions)
        window = min(_SSIM_WINDOW, x.shape[-1], x.shape[-2])
        mx, my = _box_mean(x, window), _box_mean(y, window)
        vx = _box_mean(x * x, window) - mx * mx
        vy = _box_mean(y * y, window) - my * my
        cov = _box_mean(x * y, window) - mx * my
        values = ((2 * mx * my + _C1) * (2 * cov + _C2)) / ((mx * mx + my * my + _C1) * (vx + vy + _C2))
    # Mean per patch; SSIM windows are attributed to the patch of their top-left corner.
    n, h, w = values.shape
    pad_h, pad_w = py * patch - h, px * patch - w
    sums = np.pad(values, ((0, 0), (0, max(pad_h, 0)), (0, max(pad_w, 0))))[:, : py * patch, : px * patch]
    counts = np.pad(np.ones((h, w)), ((0, max(pad_h, 0)), (0, max(pad_w, 0))))[: py * patch, : px * patch]
    sums = sums.reshape(n, py, patch, px, patch).sum(axis=(2, 4))
    counts = counts.reshape(py, patch, px, patch).sum(axis=(1, 3))
    mean = sums / np.maximum(counts, 1)
    return -mean if kind == "psnr" else mean


def counts_for_threshold(table: np.ndarray, threshold: float) -> np.ndarray:
    """Per patch, the fewest iterations (1..N) whose local quality reaches ``threshold``; N if none."""
    reached = table >= threshold
    first = np.argmax(reached, axis=0) + 1
    return np.where(reached.any(axis=0), first, table.shape[0]).astype(np.int64)


def composite(reconstructions: np.ndarray, counts: np.ndarray, geometry: Geometry) -> np.ndarray:
    """An image whose every patch comes from the reconstruction after its own iteration count."""
    per_pixel = np.repeat(np.repeat(counts, geometry.patch_size, 0), geometry.patch_size, 1)
    per_pixel = per_pixel[: reconstructions.shape[1], : reconstructions.shape[2]]
    return np.take_along_axis(reconstructions, (per_pixel - 1)[None, :, :, None], axis=0)[0]


def search_threshold(
    table: np.ndarray, acceptable: Callable[[np.ndarray], bool], steps: int = 8, lowest: bool = True
) -> np.ndarray | None:
    """Bisection on the threshold τ over the table's range.

    ``lowest=True`` (quality targets, acceptable once τ is high enough): the counts of the lowest
    acceptable τ. ``lowest=False`` (size targets, acceptable while τ is low enough): the counts of
    the highest acceptable τ. None when no τ is acceptable.
    """
    low, high = float(table.min()), float(table.max())
    best = counts_for_threshold(table, high if lowest else low)
    if not acceptable(best):
        return None
    for _ in range(steps):
        middle = (low + high) / 2
        counts = counts_for_threshold(table, middle)
        if acceptable(counts):
            best = counts
            high, low = (middle, low) if lowest else (high, middle)
        else:
            high, low = (high, middle) if lowest else (middle, low)
    return best
