"""Lossless coding of the binary codes: raw bits (coder 0), a context-adaptive range coder (coder 1)
and a range coder driven by the model version's learned context model (coder 2).

Bits are int8 [N, cells_y, cells_x, C] in {-1, +1}, with 0 for cells past their iteration count
(known to the decoder from the header, so never coded).

Coder 1 codes the bits in groups: iteration t, then channel c, then the four phases of a 2×2
sub-lattice over the cells. Every bit's context is built only from bits decoded before its group:

    a = same cell and channel, iteration t-1          (−, +, none)
    n = balance of +1 and −1 among the 8 neighbours already decoded in this plane (sub-lattice
        phases 1 to 3), or among the 8 neighbours in channel c-1 (phase 0)
    context = (min(t, 2), phase, n, a)

Each context keeps integer counts of zeros and ones, updated after each group and halved past
a limit; a bit's probability is the count ratio rounded to 16 bits, an exact binary fraction.
No floating-point network output is involved, so every machine, CPU or GPU, decodes the same
bits. The range coder is constriction's (``stream.queue.RangeEncoder``).

Coder 2 codes in the same order with probabilities from ``service/codec/context_model.py``: a
logistic model over many more decoded bits (lower channels, the previous iteration, neighbours)
whose integer weights were fitted offline for the model version that made the bits.
"""

from __future__ import annotations

import numpy as np

from service.codec.context_model import ContextModel, phase_masks
from service.errors import InvalidBitstream

__all__ = [
    "CODER_CONTEXT",
    "CODER_LEARNED",
    "CODER_RAW",
    "decode_payload",
    "encode_payload",
    "encode_prefix_payloads",
    "truncate",
]

CODER_RAW = 0
CODER_CONTEXT = 1
CODER_LEARNED = 2
_PROBABILITY_BITS = 16
_COUNT_LIMIT = 1 << 10


def _active(cell_iterations: np.ndarray, t: int) -> np.ndarray:
    return cell_iterations > t


# ---------------------------------------------------------------------------------- raw (coder 0)


def _pack_raw(bits: np.ndarray, cell_iterations: np.ndarray) -> bytes:
    """Iteration-major, then cells in raster order (only cells still iterating), channels; +1 → 1."""
    chunks = [bits[t][_active(cell_iterations, t)] > 0 for t in range(bits.shape[0])]
    flat = np.concatenate([c.reshape(-1) for c in chunks]) if chunks else np.zeros(0, bool)
    return np.packbits(flat).tobytes()


def _unpack_raw(payload: bytes, cell_iterations: np.ndarray, bits_per_cell: int) -> np.ndarray:
    total = int(cell_iterations.max(initial=0))
    needed = int(cell_iterations.sum()) * bits_per_cell
    if len(payload) != (needed + 7) // 8:
        raise InvalidBitstream(f"payload holds {len(payload)} bytes; the header implies {(needed + 7) // 8}")
    flat = np.unpackbits(np.frombuffer(payload, dtype=np.uint8), count=needed).astype(np.int8) * 2 - 1
    out = np.zeros((total, *cell_iterations.shape, bits_per_cell), dtype=np.int8)
    offset = 0
    for t in range(total):
        mask = _active(cell_iterations, t)
        count = int(mask.sum()) * bits_per_cell
        out[t][mask] = flat[offset : offset + count].reshape(-1, bits_per_cell)
        offset += count
    return out


# ---------------------------------------------------------------------------- context (coder 1)


_OFFSETS = ((-1, 0), (1, 0), (0, -1), (0, 1), (-1, -1), (-1, 1), (1, -1), (1, 1))
_BALANCE = 2  # neighbour balance clipped to ±2: 5 states (±4 saved 0.5 to 1.6 points less on Kodak codes)


def _neighbour_balance(plane: np.ndarray, known: np.ndarray) -> np.ndarray:
    """clip(#(+1) − #(−1), −2, 2) + 2 over the 8 neighbours that are ``known``; 0..4."""
    values = np.pad(np.where(known, plane, 0).astype(np.int16), 1)
    height, width = plane.shape
    total = sum(values[1 + dy : 1 + dy + height, 1 + dx : 1 + dx + width] for dy, dx in _OFFSETS)
    return (np.clip(total, -_BALANCE, _BALANCE) + _BALANCE).astype(np.int64)


class _CountContexts:
    """Adaptive counts per context (coder 1).

    Context: iteration bucket (0, 1, 2+), phase, the balance of already-decoded neighbours in the
    plane (for the first phase: the same neighbourhood in channel c-1), and the same bit at
    iteration t-1.
    """

    CONTEXTS = 3 * 4 * (2 * _BALANCE + 1) * 3

    def __init__(self) -> None:
        self.counts = np.ones((self.CONTEXTS, 2), np.int64)

    def groups(self, bits: np.ndarray, cell_iterations: np.ndarray):
        """Yield (t, c, mask, probability of 1) in coding order. ``bits`` must hold every earlier
        group when a group is yielded (the decoder fills it in as it goes); the counts learn each
        group once the next one is asked for."""
        scale = 1 << _PROBABILITY_BITS
        masks = phase_masks(*cell_iterations.shape)
        for t in range(bits.shape[0]):
            active = _active(cell_iterations, t)
            bucket = min(t, 2)
            for c in range(bits.shape[-1]):
                plane = bits[t, ..., c]
                a = (bits[t - 1, ..., c].astype(np.int64) + 1) if t > 0 else np.ones(plane.shape, np.int64)
                known = np.zeros(plane.shape, bool)
                for phase, phase_mask in enumerate(masks):
                    mask = active & phase_mask
                    if phase == 0:
                        previous = bits[t, ..., c - 1] if c > 0 else np.zeros_like(plane)
                        n = _neighbour_balance(previous, np.ones(plane.shape, bool))
                    else:
                        n = _neighbour_balance(plane, known)
                    known |= phase_mask
                    if not mask.any():
                        continue
                    context = (((bucket * 4 + phase) * 5 + n) * 3 + a)[mask]
                    counts = self.counts[context]
                    q = ((2 * counts[:, 1] + 1) * scale) // (2 * counts.sum(axis=1) + 2)
                    yield t, c, mask, np.clip(q, 1, scale - 1).astype(np.float64) / scale
                    self._update(context, (plane[mask] > 0).astype(np.int64))

    def _update(self, context: np.ndarray, symbols: np.ndarray) -> None:
        np.add.at(self.counts, (context, symbols), 1)
        touched = np.unique(context)
        full = touched[self.counts[touched].sum(axis=1) > _COUNT_LIMIT]
        self.counts[full] = (self.counts[full] + 1) // 2


def _range_encode(groups, bits: np.ndarray, every_prefix: bool = False) -> list[bytes]:
    """Code ``bits`` in the order and with the probabilities ``groups`` yields: the payload, or with
    ``every_prefix`` the payload of the first k iterations for each k = 1..N. A prefix's groups are the
    whole's first ones, with the same contexts (each group's come from its own and the previous
    iteration), and sealing the coder midway leaves it coding on: one pass gives them all."""
    import constriction

    encoder = constriction.stream.queue.RangeEncoder()
    family = constriction.stream.model.Bernoulli(perfect=False)
    payloads: list[bytes] = []

    def sealed() -> bytes:
        return encoder.get_compressed().astype("<u4").tobytes()

    for t, c, mask, probability in groups:
        while every_prefix and len(payloads) < t:
            payloads.append(sealed())
        encoder.encode((bits[t, ..., c][mask] > 0).astype(np.int32), family, probability)
    while len(payloads) < (bits.shape[0] if every_prefix else 1):
        payloads.append(sealed())
    return payloads


def _range_decode(payload: bytes, bits: np.ndarray, groups) -> np.ndarray:
    """Fill zero ``bits`` in place, group by group, with the probabilities ``groups`` yields."""
    import constriction

    if len(payload) % 4:
        raise InvalidBitstream("range-coded payload is not a whole number of 32-bit words")
    decoder = constriction.stream.queue.RangeDecoder(np.frombuffer(payload, "<u4").astype(np.uint32))
    family = constriction.stream.model.Bernoulli(perfect=False)
    for t, c, mask, probability in groups:
        symbols = np.asarray(decoder.decode(family, probability), dtype=np.int8)
        bits[t, ..., c][mask] = symbols * 2 - 1
    return bits


def _model_groups(coder_id: int, bits: np.ndarray, cell_iterations: np.ndarray, context_model):
    if coder_id == CODER_CONTEXT:
        return _CountContexts().groups(bits, cell_iterations)
    if context_model is None:
        raise ValueError("coder 2 needs the model version's context model")
    return context_model.groups(bits, cell_iterations)


# ---------------------------------------------------------------------------------- dispatch


def truncate(bits: np.ndarray, cell_iterations: np.ndarray) -> np.ndarray:
    """``bits`` [N, cy, cx, C] with zeros for cells past their count, as a decoder reconstructs them."""
    active = cell_iterations[None, :, :, None] > np.arange(bits.shape[0])[:, None, None, None]
    return (bits * active).astype(np.int8)


def encode_payload(
    coder_id: int, bits: np.ndarray, cell_iterations: np.ndarray, context_model: ContextModel | None = None
) -> bytes:
    """Code ``bits`` [N, cy, cx, C] (only cells below their count) with coder ``coder_id``;
    coder 2 needs the ``context_model`` of the model version that made the bits."""
    # Finished cells are zero on the decoder's side; contexts must see the same here.
    bits = truncate(bits, cell_iterations)
    if coder_id == CODER_RAW:
        return _pack_raw(bits, cell_iterations)
    if coder_id in (CODER_CONTEXT, CODER_LEARNED):
        return _range_encode(_model_groups(coder_id, bits, cell_iterations, context_model), bits)[0]
    raise ValueError(f"unknown coder {coder_id}")


def encode_prefix_payloads(
    coder_id: int, bits: np.ndarray, cell_iterations: np.ndarray, context_model: ContextModel | None = None
) -> list[bytes]:
    """``encode_payload`` of ``bits`` cut to its first k iterations (each cell's count at most k), for
    each k = 1..N: what a receiver of the first k needs, all from one pass of the range coders."""
    bits = truncate(bits, cell_iterations)
    if coder_id == CODER_RAW:
        return [_pack_raw(bits[:k], np.minimum(cell_iterations, k)) for k in range(1, bits.shape[0] + 1)]
    if coder_id in (CODER_CONTEXT, CODER_LEARNED):
        groups = _model_groups(coder_id, bits, cell_iterations, context_model)
        return _range_encode(groups, bits, every_prefix=True)
    raise ValueError(f"unknown coder {coder_id}")


def decode_payload(
    coder_id: int,
    payload: bytes,
    cell_iterations: np.ndarray,
    bits_per_cell: int,
    context_model: ContextModel | None = None,
) -> np.ndarray:
    """Inverse of ``encode_payload``: int8 [N, cy, cx, C] with 0 for cells past their count."""
    if coder_id == CODER_RAW:
        return _unpack_raw(payload, cell_iterations, bits_per_cell)
    if coder_id in (CODER_CONTEXT, CODER_LEARNED):
        if coder_id == CODER_LEARNED and (context_model is None or context_model.channels != bits_per_cell):
            raise InvalidBitstream("coder 2 needs a context model for the bitstream's model version")
        total = int(cell_iterations.max(initial=0))
        bits = np.zeros((total, *cell_iterations.shape, bits_per_cell), np.int8)
        try:
            return _range_decode(payload, bits, _model_groups(coder_id, bits, cell_iterations, context_model))
        # constriction reports data that cannot come from the model with AssertionError.
        except (AssertionError, ValueError, RuntimeError, OverflowError) as error:
            raise InvalidBitstream(f"payload does not decode: {error}") from error
    raise InvalidBitstream(f"unknown entropy coder id {coder_id}")
