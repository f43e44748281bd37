"""Rate control: how many iterations each patch receives to meet a quality or size target.

Spatially adaptive allocation (after Johnston et al. 2018), solved as a rate-distortion problem.
The backend's ``compress`` reports, for every iteration's image, per-cell sums of the MS-SSIM
terms and of the squared error (``model_export/quality_terms.py``). From one encode, the
:class:`QualityTable` therefore *estimates* the MS-SSIM or PSNR of any per-patch allocation by
adding cells up (exact for one uniform count). :func:`allocate` then picks the allocation with the
fewest bits that meets a quality, or the best quality within a size: a Lagrangian search over the
slope λ (each patch takes the count maximising its quality gain − λ·bits), with MS-SSIM linearised
around the current allocation and re-linearised a few times. Flat patches stop early, busy ones go on.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np

from model_export.quality_terms import POWER_FACTORS
from service.codec.patches import CELL_SIZE, Geometry
from service.errors import BadParameter

__all__ = ["PRESETS", "QualityTable", "Target", "allocate", "choose_target", "parse_target"]

TargetKind = Literal["ssimulacra2", "msssim", "psnr", "bpp"]


@dataclass(frozen=True)
class Target:
    """What the client asked for: a minimum SSIMULACRA 2, MS-SSIM or PSNR (dB), or a maximum bits per
    pixel."""

    kind: TargetKind
    value: float

    def __post_init__(self) -> None:
        limits = {"ssimulacra2": (0.0, 100.0), "msssim": (0.0, 1.0), "psnr": (0.0, 100.0), "bpp": (0.0, 24.0)}
        if self.kind not in limits:
            raise BadParameter(f"unknown target kind {self.kind!r}; use ssimulacra2, msssim, psnr or bpp")
        low, high = limits[self.kind]
        if not (low < self.value <= high):
            raise BadParameter(f"{self.kind} must be in ({low}, {high}], got {self.value}")

    def met_by(self, achieved: float) -> bool:
        return achieved <= self.value if self.kind == "bpp" else achieved >= self.value


#: Named qualities, each a SSIMULACRA 2 score (libjxl's scale: 30 low, 50 medium, 70 high, 90 visually
#: lossless).
PRESETS = {"low": 30.0, "medium": 50.0, "high": 70.0, "very-high": 80.0, "visually-lossless": 90.0}


def choose_target(given: dict[str, float | str | None], default: Target) -> Target:
    """The one target among ``given`` (kind → value: ``ssimulacra2``, ``msssim``, ``psnr``, ``bpp``, or
    ``quality``, a name from ``PRESETS``), or ``default`` when none is given."""
    asked = {kind: value for kind, value in given.items() if value is not None}
    if len(asked) > 1:
        names = ", ".join(given)
        raise BadParameter(f"give one target at most among {names}; got {', '.join(sorted(asked))}")
    if not asked:
        return default
    ((kind, value),) = asked.items()
    if kind == "quality":
        if value not in PRESETS:
            raise BadParameter(f"unknown quality {value!r}; use one of {', '.join(PRESETS)}")
        return Target("ssimulacra2", PRESETS[str(value)])
    return Target(kind, float(value))


def parse_target(text: str) -> Target:
    """``kind=value`` (``ssimulacra2=70``) or a name from ``PRESETS`` (``high``) as a :class:`Target`."""
    kind, sep, value = text.partition("=")
    if not sep:
        return choose_target({"quality": text.strip()}, Target("ssimulacra2", PRESETS["high"]))
    try:
        number = float(value)
    except ValueError:
        raise BadParameter(f"target {text!r}: {value!r} is not a number") from None
    return Target(kind.strip(), number)  # type: ignore[arg-type]


def _patch_sums(values: np.ndarray, geometry: Geometry) -> np.ndarray:
    """Sum [N, cells_y, cells_x, ...] over the cells of each patch → [N, patches_y, patches_x, ...]."""
    per = geometry.patch_size // CELL_SIZE
    (cells_y, cells_x), (patches_y, patches_x) = geometry.cells, geometry.patches
    pad = [(0, 0), (0, patches_y * per - cells_y), (0, patches_x * per - cells_x)]
    padded = np.pad(values, pad + [(0, 0)] * (values.ndim - 3))
    shaped = padded.reshape(values.shape[0], patches_y, per, patches_x, per, *values.shape[3:])
    return shaped.sum(axis=(2, 4))


@dataclass
class QualityTable:
    """Per-patch quality terms of every iteration's image, aggregated from the backend's cell sums.

    ``msssim_sums`` [N, patches_y, patches_x, 3, 5], ``positions`` [5] (windows per scale over the
    image), ``squared_errors`` [N, patches_y, patches_x], ``samples`` = pixels × 3 of the padded image.
    """

    msssim_sums: np.ndarray
    positions: np.ndarray
    squared_errors: np.ndarray
    samples: int

    @classmethod
    def from_cells(
        cls, sums: np.ndarray, positions: np.ndarray, squared_errors: np.ndarray, geometry: Geometry
    ) -> QualityTable:
        """From the backend's per-cell outputs (``msssim_sums`` [N,h,w,3,5], ``msssim_positions``
        [h,w,5], ``squared_errors`` [N,h,w]) for the whole padded image."""
        cells_y, cells_x = geometry.cells
        return cls(
            msssim_sums=_patch_sums(sums.astype(np.float64), geometry),
            positions=positions.astype(np.float64).sum(axis=(0, 1)),
            squared_errors=_patch_sums(squared_errors.astype(np.float64), geometry),
            samples=cells_y * cells_x * CELL_SIZE * CELL_SIZE * 3,
        )

    @property
    def iterations(self) -> int:
        return self.msssim_sums.shape[0]

    def first(self, iterations: int) -> QualityTable:
        """The terms of the first ``iterations`` only."""
        return dataclasses.replace(
            self, msssim_sums=self.msssim_sums[:iterations], squared_errors=self.squared_errors[:iterations]
        )

    def _gather(self, values: np.ndarray, counts: np.ndarray) -> np.ndarray:
        rows, cols = np.indices(counts.shape)
        return values[np.clip(counts, 1, self.iterations) - 1, rows, cols]

    def _means(self, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per channel and valid scale, the MS-SSIM term means [3, S], with the scales' weights [S]."""
        valid = self.positions > 0
        weights = np.asarray(POWER_FACTORS)[valid]
        if not valid.all():  # as service/codec/quality.py does for images too small for 5 scales
            weights = weights / weights.sum()
        totals = self._gather(self.msssim_sums, counts).sum(axis=(0, 1))
        return totals[:, valid] / self.positions[valid], weights

    def msssim(self, counts: np.ndarray) -> float:
        """Estimated MS-SSIM when patch p stops after ``counts[p]`` iterations (exact if uniform)."""
        means, weights = self._means(counts)
        return float(np.mean(np.prod(np.maximum(means, 0.0) ** weights, axis=1)))

    def psnr(self, counts: np.ndarray) -> float:
        """Estimated PSNR (dB) for per-patch ``counts``."""
        mse = self._gather(self.squared_errors, counts).sum() / self.samples
        return float(10 * np.log10(255.0**2 / mse)) if mse > 0 else float("inf")

    def estimate(self, kind: str, counts: np.ndarray) -> float:
        """Estimated quality of ``kind`` (``psnr``, else MS-SSIM) for per-patch ``counts``."""
        return self.psnr(counts) if kind == "psnr" else self.msssim(counts)

    def utility(self, kind: str, counts: np.ndarray) -> np.ndarray:
        """Quality gain of each patch at each count, [N, patches_y, patches_x], linear in the patch's
        terms: minus squared error for PSNR, the MS-SSIM gradient at ``counts`` for MS-SSIM."""
        if kind == "psnr":
            return -self.squared_errors
        means, weights = self._means(counts)
        valid = self.positions > 0
        per_channel = np.prod(np.maximum(means, 1e-9) ** weights, axis=1, keepdims=True)  # [3, 1]
        gradient = np.zeros((3, len(POWER_FACTORS)))
        gradient[:, valid] = per_channel * weights / np.maximum(means, 1e-9) / self.positions[valid] / 3
        return np.einsum("nyxcs,cs->nyx", self.msssim_sums, gradient)


def _counts_at_slope(
    utility: np.ndarray, cost: np.ndarray, slope: float, minimum: np.ndarray | None = None
) -> np.ndarray:
    """Per patch, the count (``minimum``..N) maximising utility − slope·bits (bits = count × cost)."""
    n = np.arange(1, utility.shape[0] + 1)[:, None, None]
    counts = np.argmax(utility - slope * n * cost[None], axis=0) + 1
    return counts if minimum is None else np.maximum(counts, minimum)


def allocate(
    table: QualityTable,
    kind: str,
    cost: np.ndarray,
    acceptable: Callable[[np.ndarray], bool],
    fewest_bits: bool = True,
    start: np.ndarray | None = None,
    rounds: int = 3,
    steps: int = 32,
    minimum: np.ndarray | None = None,
) -> np.ndarray | None:
    """Per-patch iteration counts [patches_y, patches_x] by Lagrangian search.

    ``cost`` [patches_y, patches_x] is the bits one iteration of each patch costs.
    ``fewest_bits=True`` (quality targets): the allocation with the fewest bits that is
    ``acceptable`` (quality high enough). ``fewest_bits=False`` (size targets): the one with the
    most bits still acceptable (small enough). None when no allocation is acceptable. ``kind``
    chooses the quality being traded (``psnr``, else MS-SSIM); MS-SSIM is linearised around
    ``start`` (default: every iteration) and then around each round's answer. ``minimum``
    [patches_y, patches_x] is the fewest iterations each patch may get.
    """
    full = np.full(cost.shape, table.iterations)
    floor = np.ones_like(full) if minimum is None else np.minimum(np.maximum(minimum, 1), full)
    if not acceptable(full if fewest_bits else floor):
        return None
    best, operating_point = None, full if start is None else start
    for _ in range(rounds if kind != "psnr" else 1):
        utility = table.utility(kind, operating_point)
        span = float(utility.max() - utility.min()) / float(cost.min()) + 1e-30
        low, high = np.log(span * 1e-9), np.log(span * 10.0)  # slope → all iterations … one iteration
        found = None
        for _ in range(steps):
            middle = (low + high) / 2
            counts = _counts_at_slope(utility, cost, float(np.exp(middle)), floor)
            if acceptable(counts):
                found = counts
                low, high = (middle, high) if fewest_bits else (low, middle)
            else:
                low, high = (low, middle) if fewest_bits else (middle, high)
        if found is None:
            break
        bits = float((found * cost).sum())
        if best is None or (bits < best[0] if fewest_bits else bits > best[0]):
            best = (bits, found)
        operating_point = found
    return None if best is None else best[1]
