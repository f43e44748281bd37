"""A learned, integer-deterministic context model for the binary codes (entropy coder 2).

The probability that bit B[t, y, x, c] is +1 comes from a logistic model over bits decoded
before it, with integer weights fitted offline on training-set codes of one model version
(``model_export/context_fit.py``) and shipped inside that SavedModel (signature
``context_model``), so a bitstream's model version also fixes its probabilities.

Coding order (as coder 1): iteration t, channel c, then the four phases of a 2×2 sub-lattice of
cells. Features of a bit, all in {-1, 0, +1} or small integer sums (0 = unknown or outside)::

    lower        B[t, y, x, j] for j < c                                    32
    previous     B[t-1, y, x, j] for every j                                32
    left over    B[t, y+dy, x+dx, c-1] for the 8 neighbours                  8
    earlier      B[t-1, y+dy, x+dx, c] for the 8 neighbours                  8
    lower nb     Σ of the 4 neighbours' B[t, ·, ·, j] for j < c             32
    previous nb  Σ of the 4 neighbours' B[t-1, ·, ·, j]                     32
    ─── static: known once channels < c are decoded ──────────────────────  144 (4C + 16)
    own          B[t, y+dy, x+dx, c] for the 8 neighbours of earlier phases  8
    phase        one-hot                                                     4

logit = Σ weight · feature + bias in integers (weights scaled by 2^LOGIT_FRACTION_BITS); the
probability of +1 is ``table[clip(logit >> shift + offset)]``, a 16-bit integer from a table
shipped with the weights (no transcendental function is evaluated while coding). Sums use
float64 BLAS on integer values below 2^53, which is exact, hence the same on every machine.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property

import numpy as np

__all__ = [
    "LOGIT_FRACTION_BITS",
    "ContextModel",
    "feature_count",
    "feature_rows",
    "known_neighbour_features",
    "phase_masks",
    "sigmoid_table",
    "static_feature_count",
    "static_features",
]

PHASES = ((0, 0), (1, 1), (0, 1), (1, 0))  # (y mod 2, x mod 2) in coding order
_NEIGHBOURS = ((-1, 0), (1, 0), (0, -1), (0, 1), (-1, -1), (-1, 1), (1, -1), (1, 1))
_FOUR = _NEIGHBOURS[:4]
_ONES_FOUR = np.ones(len(_FOUR))
#: Per phase, the neighbours (indices into _NEIGHBOURS) that belong to an earlier phase.
_KNOWN_NEIGHBOURS = tuple(
    tuple(i for i, (dy, dx) in enumerate(_NEIGHBOURS) if PHASES.index(((py + dy) % 2, (px + dx) % 2)) < phase)
    for phase, (py, px) in enumerate(PHASES)
)
#: Weights and biases are integers: real value × 2^LOGIT_FRACTION_BITS.
LOGIT_FRACTION_BITS = 8
#: The probability table has this many entries per logit unit ...
TABLE_STEPS_PER_UNIT = 32
#: ... and covers logits in [-TABLE_RANGE, TABLE_RANGE).
TABLE_RANGE = 16
_TABLE_SIZE = 2 * TABLE_RANGE * TABLE_STEPS_PER_UNIT
_PROBABILITY_SCALE = 1 << 16


def static_feature_count(channels: int) -> int:
    """Features known once the lower channels are decoded (144 for 32 channels)."""
    return 4 * channels + 2 * len(_NEIGHBOURS)


def feature_count(channels: int) -> int:
    """All features of a bit: the static ones, its own known neighbours, the phase (156 for 32)."""
    return static_feature_count(channels) + len(_NEIGHBOURS) + len(PHASES)


def _shift(plane: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """``plane[y + dy, x + dx, ...]`` for an [h, w, ...] array, 0 outside."""
    h, w = plane.shape[:2]
    out = np.zeros_like(plane)
    out[max(0, -dy) : h - max(0, dy), max(0, -dx) : w - max(0, dx)] = plane[
        max(0, dy) : h + min(0, dy), max(0, dx) : w + min(0, dx)
    ]
    return out


def phase_masks(height: int, width: int) -> list[np.ndarray]:
    """Boolean [h, w] masks of the four sub-lattice phases, in coding order."""
    ys, xs = np.indices((height, width))
    return [(ys % 2 == py) & (xs % 2 == px) for py, px in PHASES]


def static_features(current: np.ndarray, previous: np.ndarray, c: int) -> np.ndarray:
    """Features [h, w, static_feature_count(C)] (float64, integer-valued) of channel ``c``'s bits.

    ``current`` is B[t] [h, w, C] and ``previous`` B[t-1] (zeros at t = 0); only channels below
    ``c`` of ``current`` are read, so a decoder may hold zeros for the channels it has not decoded.
    """
    current = current.astype(np.float64)
    previous = previous.astype(np.float64)
    lower = current.copy()
    lower[..., c:] = 0.0
    left = current[..., c - 1] if c > 0 else np.zeros(current.shape[:2])
    blocks = [
        lower,
        previous,
        np.stack([_shift(left, dy, dx) for dy, dx in _NEIGHBOURS], axis=-1),
        np.stack([_shift(previous[..., c], dy, dx) for dy, dx in _NEIGHBOURS], axis=-1),
        _four_sum(lower),
        _four_sum(previous),
    ]
    return np.concatenate(blocks, axis=-1)


def known_neighbour_features(plane: np.ndarray, known: np.ndarray) -> np.ndarray:
    """[h, w, 8]: each neighbour's bit in ``plane`` [h, w] where that neighbour is ``known``, else 0."""
    values = np.where(known, plane, 0).astype(np.float64)
    return np.stack([_shift(values, dy, dx) for dy, dx in _NEIGHBOURS], axis=-1)


def sigmoid_table() -> np.ndarray:
    """P(+1) × 2^16 for each table step, int32 [_TABLE_SIZE] in [1, 2^16 − 1] (built at export)."""
    centres = (np.arange(_TABLE_SIZE) - _TABLE_SIZE // 2 + 0.5) / TABLE_STEPS_PER_UNIT
    return np.clip(np.round(_PROBABILITY_SCALE / (1.0 + np.exp(-centres))), 1, _PROBABILITY_SCALE - 1).astype(
        np.int32
    )


@dataclass(frozen=True)
class ContextModel:
    """Integer weights [T, C, feature_count(C)] and biases [T, C] per iteration and channel (iterations past
    T use the last), and the probability table. Exactly what the ``context_model`` signature returns."""

    weights: np.ndarray
    biases: np.ndarray
    table: np.ndarray

    def __post_init__(self) -> None:
        t, c, f = self.weights.shape
        if f != feature_count(c) or self.biases.shape != (t, c) or self.table.shape != (_TABLE_SIZE,):
            raise ValueError(
                f"context model shapes {self.weights.shape}, {self.biases.shape}, {self.table.shape} "
                f"do not match [T, C, {feature_count(c)}], [T, C], [{_TABLE_SIZE}]"
            )
        if np.any(np.abs(self.weights) >= 1 << 20) or np.any(np.abs(self.biases) >= 1 << 24):
            raise ValueError("context model weights out of range")
        if self.table.min() < 1 or self.table.max() >= _PROBABILITY_SCALE:
            raise ValueError("context model probabilities must lie in [1, 2^16 − 1]")

    @property
    def channels(self) -> int:
        return self.weights.shape[1]

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> ContextModel:
        return cls(
            weights=np.asarray(arrays["weights"], np.int64),
            biases=np.asarray(arrays["biases"], np.int64),
            table=np.asarray(arrays["table"], np.int64),
        )

    @cached_property
    def _weight_blocks(self) -> tuple[np.ndarray, ...]:
        """The weights split by feature block (as ``feature_rows`` orders them), in float64."""
        n, channels = len(_NEIGHBOURS), self.channels
        blocks = np.cumsum([0, channels, channels, n, n, channels, channels, n, len(PHASES)])
        return tuple(self.weights[..., a:b].astype(np.float64) for a, b in itertools.pairwise(blocks))

    @cached_property
    def _lower_weights(self) -> np.ndarray:
        """The lower channels' own and 4-neighbour-sum weights side by side, [T, C, C, 2]: one matrix
        product per channel gives both."""
        lower, lower_nb = self._weight_blocks[0], self._weight_blocks[4]
        return np.stack([lower, lower_nb], axis=-1)

    @cached_property
    def _table_probabilities(self) -> np.ndarray:
        return self.table.astype(np.float64) / _PROBABILITY_SCALE

    def _probabilities(self, logits: np.ndarray) -> np.ndarray:
        """Integer logits → P(+1) as exact 16-bit binary fractions (float64)."""
        steps = np.floor(logits / (1 << LOGIT_FRACTION_BITS) * TABLE_STEPS_PER_UNIT)  # exact: a power of 2
        index = np.clip(steps + _TABLE_SIZE // 2, 0, _TABLE_SIZE - 1).astype(np.int64)
        return self._table_probabilities[index]

    def groups(
        self, bits: np.ndarray, cell_iterations: np.ndarray
    ) -> Iterator[tuple[int, int, np.ndarray, np.ndarray]]:
        """Yield (t, c, mask, P(+1) of the masked bits) in coding order.

        ``bits`` int8 [N, h, w, C] must hold every earlier group when a group is yielded (the
        decoder fills it in as it goes); cells code bits for t below their ``cell_iterations``.
        """
        total, height, width, channels = bits.shape
        if channels != self.channels:
            raise ValueError(f"context model is for {self.channels} channels, bits have {channels}")
        # The logit is linear in the features, so each block's contribution is computed on whole
        # planes (all channels at once where it depends only on iteration t-1); ``feature_rows``
        # lists the same features one by one, and a test checks the two agree.
        _, previous_w, left_w, earlier_w, _, previous_nb, own_w, phase_w = self._weight_blocks
        lower_both = self._lower_weights
        masks = phase_masks(height, width)
        for t in range(total):
            active = cell_iterations > t
            if not active.any():
                continue
            # Per phase: the coded cells (full plane) and the same on the phase's sub-lattice.
            phases = [
                (phase, py, px, active & masks[phase], active[py::2, px::2])
                for phase, (py, px) in enumerate(PHASES)
                if (active & masks[phase]).any()
            ]
            k = min(t, self.weights.shape[0] - 1)
            previous = bits[t - 1].astype(np.float64) if t > 0 else np.zeros(bits.shape[1:])
            base = (
                previous @ previous_w[k].T
                + _four_sum(previous @ previous_nb[k].T)
                + sum(_shift(previous, dy, dx) * earlier_w[k][:, i] for i, (dy, dx) in enumerate(_NEIGHBOURS))
                + self.biases[k].astype(np.float64)
            )
            current = np.zeros((height, width, channels))  # channels decoded so far at iteration t
            padded = np.zeros((height + 2, width + 2))
            for c in range(channels):
                static = base[..., c]
                if c > 0:
                    current[..., c - 1] = bits[t, ..., c - 1]
                    mixed = current @ lower_both[k, c]
                    static = static + mixed[..., 0] + _four_sum(mixed[..., 1])
                    static = static + _neighbour_sum(current[..., c - 1], left_w[k, c])
                padded[1:-1, 1:-1] = bits[t, ..., c]  # at the decoder, only earlier phases are set
                for phase, py, px, mask, sub_mask in phases:
                    logits = static[py::2, px::2] + phase_w[k, c, phase]
                    rows, cols = logits.shape
                    for i in _KNOWN_NEIGHBOURS[phase]:
                        dy, dx = _NEIGHBOURS[i]
                        y0, x0 = 1 + py + dy, 1 + px + dx
                        logits = (
                            logits + own_w[k, c, i] * padded[y0 : y0 + 2 * rows : 2, x0 : x0 + 2 * cols : 2]
                        )
                    yield t, c, mask, self._probabilities(logits[sub_mask])
                    padded[1:-1, 1:-1][py::2, px::2] = bits[t, py::2, px::2, c]


def _four_sum(values: np.ndarray) -> np.ndarray:
    """Sum over the 4 direct neighbours of each position of an [h, w, ...] array (0 outside)."""
    return _neighbour_sum(values, _ONES_FOUR)


def _neighbour_sum(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Σ_i weights[i] · values[y + dy_i, x + dx_i] over the neighbours of an [h, w, ...] array (0 outside);
    ``weights`` follows ``_NEIGHBOURS`` (all 8, or the first 4)."""
    h, w = values.shape[:2]
    padded = np.zeros((h + 2, w + 2, *values.shape[2:]))
    padded[1:-1, 1:-1] = values
    total = np.zeros(values.shape)
    for weight, (dy, dx) in zip(weights, _NEIGHBOURS, strict=False):
        total += weight * padded[1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w]
    return total


def feature_rows(bits: np.ndarray, t: int, c: int) -> np.ndarray:
    """Every feature of every bit of plane (t, c), float64 [h·w, feature_count(C)] in raster order,
    as ``ContextModel.groups`` sees them when coding uniform ``bits`` [N, h, w, C] (for fitting)."""
    _, height, width, _ = bits.shape
    previous = bits[t - 1] if t > 0 else np.zeros(bits.shape[1:], np.int8)
    static = static_features(bits[t], previous, c)
    own = np.zeros((height, width, len(_NEIGHBOURS)))
    phase = np.zeros((height, width, len(PHASES)))
    known = np.zeros((height, width), bool)
    for index, mask in enumerate(phase_masks(height, width)):
        own[mask] = known_neighbour_features(bits[t, ..., c], known)[mask]
        phase[mask, index] = 1.0
        known |= mask
    return np.concatenate([static, own, phase], axis=-1).reshape(height * width, -1)
