"""Lossless coding of the refinement layer's quantised DCT coefficients (docs/decisions.md 29).

A context-adaptive range coder built for what the layer holds: [3, blocks_y, blocks_x, 8, 8]
integers, mostly zero at high frequencies, larger where the picture is busy. Format 7 writes two
streams, so that a receiver can show the blocks' means before the rest: first the adaptive quantiser's
levels (one small integer per 32×32 region, coded as a DC plane is) and the three DC planes (1.), then
the AC (2.); formats 5 and 6 wrote one, channel by channel. Per channel:

1. **DC**: the blocks' DC plane coded coarse to fine, as a lattice that halves its spacing each
   level; each value is predicted from the mean of its already coded neighbours at that level, and
   the residual's context is how far those neighbours spread.
2. **AC**, band by band in zigzag order, and within a band the blocks on the even squares of a
   checkerboard, then those on the odd ones. A coefficient's context is luma or chroma, the
   checkerboard phase, and a bucket of the magnitudes already coded around it: the same block's two
   lower neighbouring bands; the four neighbouring blocks' same band (odd squares) or their lower
   bands (even squares); for chroma, the luma coefficient at the same place. Contexts per band
   measured worse: they split the statistics too thinly for one image (decision 29).

Magnitudes up to 16 are symbols of an adaptive categorical model per context (counts from ½, or from
tables fitted on the training split, ``coefficient_counts``, as the layer writes since decision 51;
halved past a limit); larger ones escape to an Exp-Golomb remainder, and signs are coded at
probability ½. Counts change between chunks of one context's symbols within a group, each chunk no
longer than the counts' total, so the model adapts almost as fast as a sequential coder while every
step stays a numpy operation. The counts are exact binary fractions, so any machine decodes the
same coefficients. The range coder is constriction's, as in ``entropy.py``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from service.codec import coefficient_counts
from service.errors import InvalidBitstream

__all__ = ["decode", "decode_one_stream", "encode"]

BLOCK = 8
#: magnitudes coded as symbols; the last symbol is the escape to an Exp-Golomb remainder
_ESCAPE = 17
_SYMBOLS = _ESCAPE + 1
#: bucket lower bounds of a context's activity (a weighted sum of neighbouring magnitudes)
_BUCKETS = np.array([0, 1, 2, 3, 4, 6, 8, 11, 15, 20, 28, 40, 56, 80])
#: remainder lengths an escape may declare (magnitudes up to 2**20)
_REMAINDER_BITS = 21
_POWERS = 1 << np.arange(_REMAINDER_BITS)
_COUNT_LIMIT = 1 << 16
_MIN_CHUNK = 32
_ZIGZAG = sorted(
    ((u, v) for u in range(BLOCK) for v in range(BLOCK) if u + v), key=lambda band: (sum(band), band[0])
)


def _bucket(activity: np.ndarray) -> np.ndarray:
    return np.searchsorted(_BUCKETS, activity, side="right") - 1


def _neighbours(plane: np.ndarray, fill: int, offsets) -> list[np.ndarray]:
    """For each offset (dy, dx), the plane seen from every position: out[i, j] = plane[i + dy, j + dx],
    ``fill`` outside."""
    h, w = plane.shape
    padded = np.pad(plane, 1, constant_values=fill)
    return [padded[1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w] for dy, dx in offsets]


def _neighbour_sum(plane: np.ndarray, known: np.ndarray, offsets) -> tuple[np.ndarray, np.ndarray]:
    """(sum, count) of each position's ``known`` neighbours at ``offsets``."""
    total = sum(_neighbours(np.where(known, plane, 0).astype(np.int64), 0, offsets))
    count = sum(n.astype(np.int64) for n in _neighbours(known, False, offsets))
    return total, count


_FOUR = ((-1, 0), (1, 0), (0, -1), (0, 1))
_EIGHT = tuple((dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx)


class _Channel:
    """One side of the range coder: encodes the values it is given, or decodes as many as asked."""

    def __init__(self, payload: bytes | None = None) -> None:
        import constriction

        self._stream = constriction.stream
        if payload is None:
            self._coder = constriction.stream.queue.RangeEncoder()
            self.decoding = False
        else:
            if len(payload) % 4:
                raise InvalidBitstream("refinement payload is not a whole number of 32-bit words")
            words = np.frombuffer(payload, "<u4").astype(np.uint32)
            self._coder = constriction.stream.queue.RangeDecoder(words)
            self.decoding = True

    def categorical(self, counts: np.ndarray, values: np.ndarray | None, n: int) -> np.ndarray:
        model = self._stream.model.Categorical(counts, perfect=False)
        if self.decoding:
            return np.asarray(self._coder.decode(model, n), np.int64)
        self._coder.encode(values.astype(np.int32), model)
        return values

    def halves(self, values: np.ndarray | None, n: int) -> np.ndarray:
        """Bits at probability ½."""
        if n == 0:
            return np.zeros(0, np.int64)
        model = self._stream.model.Bernoulli(0.5, perfect=False)
        if self.decoding:
            return np.asarray(self._coder.decode(model, n), np.int64)
        self._coder.encode(values.astype(np.int32), model)
        return values

    def payload(self) -> bytes:
        return self._coder.get_compressed().astype("<u4").tobytes()


class _AdaptiveModel:
    """Symbol counts per context, shared by encoder and decoder: from ½ each, or from ``initial``."""

    def __init__(
        self, contexts: int, symbols: int, initial: np.ndarray | None = None, tally: np.ndarray | None = None
    ) -> None:
        self.counts = np.full((contexts, symbols), 0.5) if initial is None else initial.astype(np.float64)
        self.tally = tally  # where given, every symbol coded is counted into it [contexts, symbols]

    def code(self, channel: _Channel, contexts: np.ndarray, symbols: np.ndarray | None) -> np.ndarray:
        """Code ``symbols`` (None when decoding) under ``contexts``: context by context in ascending
        order, each in chunks no longer than its counts' total, counts updated after each chunk."""
        out = np.empty(len(contexts), np.int64)
        if not len(contexts):
            return out
        order = np.argsort(contexts, kind="stable")
        ordered = contexts[order]
        starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
        for start, end in zip(starts, [*starts[1:], len(ordered)], strict=True):
            counts = self.counts[ordered[start]]
            at = start
            while at < end:
                stop = min(end, at + max(_MIN_CHUNK, int(counts.sum())))
                where = order[at:stop]
                chunk = channel.categorical(counts, None if symbols is None else symbols[where], stop - at)
                if chunk.min(initial=0) < 0 or chunk.max(initial=0) >= counts.size:
                    raise InvalidBitstream("refinement payload decodes to an impossible symbol")
                out[where] = chunk
                counts += np.bincount(chunk, minlength=counts.size)
                if counts.sum() > _COUNT_LIMIT:
                    counts[:] = np.ceil(counts / 2)
                at = stop
        if self.tally is not None:
            np.add.at(self.tally, (contexts, out), 1)
        return out


class _Magnitudes:
    """Signed integers as (context-coded magnitude symbol, escape remainder, sign)."""

    def __init__(
        self, contexts: int, initial: np.ndarray | None = None, tally: np.ndarray | None = None
    ) -> None:
        self.symbols = _AdaptiveModel(contexts, _SYMBOLS, initial, tally)
        self.lengths = _AdaptiveModel(1, _REMAINDER_BITS)

    def code(self, channel: _Channel, contexts: np.ndarray, values: np.ndarray | None) -> np.ndarray:
        encoding = values is not None
        magnitude = np.abs(values) if encoding else None
        symbol = self.symbols.code(channel, contexts, np.minimum(magnitude, _ESCAPE) if encoding else None)
        escaped = symbol == _ESCAPE
        remainder = magnitude[escaped] - _ESCAPE + 1 if encoding else None  # ≥ 1
        length = self.lengths.code(
            channel,
            np.zeros(int(escaped.sum()), np.int64),
            np.searchsorted(_POWERS, remainder, side="right") - 1 if encoding else None,
        )
        # Exp-Golomb: the bits of the remainder below its leading one, most significant first
        shifts = np.concatenate([np.arange(n - 1, -1, -1) for n in length] or [np.zeros(0, np.int64)])
        owner = np.repeat(np.arange(len(length)), length)
        bits = (remainder[owner] >> shifts) & 1 if encoding else None
        bits = channel.halves(bits, len(shifts))
        rebuilt = np.ones(len(length), np.int64) << length
        np.add.at(rebuilt, owner, bits << shifts)
        result = symbol.copy()
        result[escaped] = rebuilt + _ESCAPE - 1
        nonzero = result != 0
        negative = (values[nonzero] < 0).astype(np.int64) if encoding else None
        signs = channel.halves(negative, int(nonzero.sum()))
        result[nonzero] *= 1 - 2 * signs
        return result


def _code_dc(channel: _Channel, model: _Magnitudes, plane: np.ndarray, chroma: bool, encoding: bool) -> None:
    """Code (or fill in, decoding) a DC plane in place, coarse lattice first."""
    height, width = plane.shape
    if height <= 2 and width <= 2:
        contexts = np.full(plane.size, (chroma + 1) * len(_BUCKETS) - 1)
        plane[...] = model.code(channel, contexts, plane.ravel() if encoding else None).reshape(plane.shape)
        return
    _code_dc(channel, model, plane[::2, ::2], chroma, encoding)
    known = np.zeros(plane.shape, bool)
    known[::2, ::2] = True
    for py, px in ((0, 1), (1, 0), (1, 1)):
        target = np.zeros(plane.shape, bool)
        target[py::2, px::2] = True
        if not target.any():
            continue
        total, count = _neighbour_sum(plane, known, _EIGHT)
        prediction = (2 * total + count) // (2 * np.maximum(count, 1))
        lowest, highest = np.iinfo(np.int64).min, np.iinfo(np.int64).max
        high = np.maximum.reduce(_neighbours(np.where(known, plane, lowest), lowest, _EIGHT))
        low = np.minimum.reduce(_neighbours(np.where(known, plane, highest), highest, _EIGHT))
        spread = np.where(high >= low, high - low, 0)[target]
        contexts = chroma * len(_BUCKETS) + _bucket(spread)
        residual = (plane - prediction)[target] if encoding else None
        plane[target] = prediction[target] + model.code(channel, contexts, residual)
        known |= target


def _models(trained: bool, tallies: dict[str, np.ndarray] | None) -> dict[str, _Magnitudes]:
    """The magnitude models of the levels, the means and the rest, their counts from ½ or (``trained``)
    from ``coefficient_counts``' tables; ``tallies``: arrays to count the symbols coded into."""
    return {
        name: _Magnitudes(
            contexts,
            getattr(coefficient_counts, name.upper()) if trained else None,
            None if tallies is None else tallies.setdefault(name, np.zeros((contexts, _SYMBOLS), np.int64)),
        )
        for name, contexts in (
            ("levels", len(_BUCKETS)),
            ("means", 2 * len(_BUCKETS)),
            ("rest", 4 * len(_BUCKETS)),
        )
    }


def _code(
    means: _Channel, rest: _Channel | None, q: np.ndarray, encoding: bool, models: dict[str, _Magnitudes]
) -> np.ndarray:
    """The one walk over the coefficients both directions share, the blocks' means (DC) on ``means``
    and the rest on ``rest`` (one channel in formats 5 and 6; None: the means alone, the rest left
    zero), with ``models`` (``_models``); ``q`` [3, 8, 8, blocks_y, blocks_x] (band-major: each band's
    plane contiguous) is filled in when decoding."""
    blocks_y, blocks_x = q.shape[3:]
    odd = (np.add.outer(np.arange(blocks_y), np.arange(blocks_x)) % 2).astype(bool)
    everywhere = np.ones(odd.shape, bool)
    dc_model, ac_model = models["means"], models["rest"]
    magnitude = np.abs(q) if encoding else np.zeros(q.shape, np.int32)
    for c in range(q.shape[0]):
        dc = q[c, 0, 0].astype(np.int64)
        _code_dc(means, dc_model, dc, c > 0, encoding)
        q[c, 0, 0] = dc
        magnitude[c, 0, 0] = np.abs(dc)
        for u, v in _ZIGZAG if rest is not None else ():
            lower = [magnitude[c, u - 1, v]] if u else []
            lower += [magnitude[c, u, v - 1]] if v else []
            inside = sum(lower) * (2 // len(lower))
            for phase in (False, True):  # even squares of the checkerboard, then odd ones
                if phase:  # the even neighbours' same band
                    total, count = _neighbour_sum(magnitude[c, u, v], ~odd, _FOUR)
                    activity = 2 * inside + 4 * total // np.maximum(count, 1)
                else:  # the neighbours' lower bands
                    total, count = _neighbour_sum(inside, everywhere, _FOUR)
                    activity = 2 * inside + 2 * total // np.maximum(count, 1)
                if c:
                    activity = activity + 2 * magnitude[0, u, v]
                target = odd == phase
                contexts = (int(c > 0) * 2 + phase) * len(_BUCKETS)
                contexts = contexts + _bucket(activity[target])
                values = ac_model.code(rest, contexts, q[c, u, v][target] if encoding else None)
                q[c, u, v][target] = values
                magnitude[c, u, v][target] = np.abs(values)
    return q


def encode(
    quantised: np.ndarray,
    levels: np.ndarray | None = None,
    trained: bool = False,
    tallies: dict[str, np.ndarray] | None = None,
) -> tuple[bytes, bytes]:
    """Two range-coded streams of ``quantised`` (integers [3, blocks_y, blocks_x, 8, 8], each below
    2**20 in magnitude): the adaptive quantiser's ``levels`` (small integers [regions_y, regions_x];
    coded as a DC plane is) if any and the blocks' means, then the rest (format 7). ``trained``: the
    counts start from the tables fitted on the training split (``coefficient_counts``), else from ½;
    ``tallies`` (name → [contexts, symbols], added to): the symbols coded with each model, per context."""
    means, rest = _Channel(), _Channel()
    models = _models(trained, tallies)
    if levels is not None:
        _code_dc(means, models["levels"], levels.astype(np.int64), False, encoding=True)
    _code(means, rest, np.ascontiguousarray(quantised.transpose(0, 3, 4, 1, 2), np.int32), True, models)
    return means.payload(), rest.payload()


def decode(
    means: bytes,
    rest: bytes | None,
    blocks_y: int,
    blocks_x: int,
    regions: tuple[int, int] | None = None,
    trained: bool = False,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Inverse of ``encode`` for an image of ``blocks_y`` × ``blocks_x`` blocks: (coefficients, levels),
    the levels read only where ``regions`` gives their shape; without ``rest``, the means alone (the
    other coefficients zero); ``trained`` as ``encode`` was told. Raises ``InvalidBitstream`` where the
    bytes cannot be what ``encode`` wrote."""
    levels = None if regions is None else np.zeros(regions, np.int64)

    def walk(q: np.ndarray) -> np.ndarray:
        means_channel, models = _Channel(means), _models(trained, None)
        if levels is not None:
            _code_dc(means_channel, models["levels"], levels, False, encoding=False)
        return _code(means_channel, None if rest is None else _Channel(rest), q, False, models)

    return _decoded(walk, blocks_y, blocks_x), levels


def decode_one_stream(payload: bytes, blocks_y: int, blocks_x: int) -> np.ndarray:
    """The coefficients of bitstream formats 5 and 6, means and the rest in one stream."""

    def walk(q: np.ndarray) -> np.ndarray:
        channel = _Channel(payload)
        return _code(channel, channel, q, False, _models(False, None))

    return _decoded(walk, blocks_y, blocks_x)


def _decoded(walk: Callable[[np.ndarray], np.ndarray], blocks_y: int, blocks_x: int) -> np.ndarray:
    q = np.zeros((3, BLOCK, BLOCK, blocks_y, blocks_x), np.int32)
    try:
        return walk(q).transpose(0, 3, 4, 1, 2)
    # constriction reports data that cannot come from the model with AssertionError.
    except (AssertionError, ValueError, RuntimeError, OverflowError) as error:
        raise InvalidBitstream(f"refinement payload does not decode: {error}") from error
