"""Rate control: how many iterations each patch receives to meet a quality or size target.

Version 1 gives every patch the same count: the fewest iterations whose measured quality meets
the target (``msssim``, ``psnr``), or the most whose bitstream fits the size (``bpp``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from service.errors import BadParameter

__all__ = ["Target", "fewest_iterations_meeting", "most_iterations_within"]

TargetKind = Literal["msssim", "psnr", "bpp"]


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


def fewest_iterations_meeting(
    quality_at: Callable[[int], float], target: Target, available: int
) -> tuple[int, bool]:
    """Smallest n in [1, available] with ``quality_at(n)`` meeting ``target`` (bisection: quality
    grows with n). Returns (n, met); when no n meets it, (available, False)."""
    if target.met_by(quality_at(available)) is False:
        return available, False
    low, high = 1, available  # quality_at(high) meets the target
    while low < high:
        middle = (low + high) // 2
        if target.met_by(quality_at(middle)):
            high = middle
        else:
            low = middle + 1
    return high, True


def most_iterations_within(
    size_bits_at: Callable[[int], int], pixels: int, target: Target, available: int
) -> tuple[int, bool]:
    """Largest n in [1, available] whose bitstream (``size_bits_at(n)`` bits) stays within
    ``target`` bpp; (1, False) when even one iteration is too large."""
    best = 0
    for n in range(1, available + 1):
        if size_bits_at(n) / pixels <= target.value:
            best = n
        else:
            break
    return (best, True) if best else (1, False)
