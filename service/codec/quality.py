"""Image quality metrics: SSIMULACRA 2 (libjxl's perceptual score), MS-SSIM (TensorFlow's definition)
and PSNR, on RGB uint8.

One implementation for the gateway's reported numbers, evaluation and benchmarks. MS-SSIM is
``tf.image.ssim_multiscale`` with ``max_val=255``, computed the same way step for step but with the
Gaussian window applied as two 1-D passes over the four window means at once (``ssim_map``; tests
check it equals TF's function to 5e-6, float32 rounding). Images too small for its five scales use as
many scales as fit (weights renormalised) and a filter no larger than the image.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from model_export import ssimulacra2 as _ssimulacra2
from model_export.quality_terms import POWER_FACTORS, gaussian_window, ssim_map

__all__ = [
    "MEASURES",
    "msssim",
    "msssim_batch",
    "psnr",
    "psnr_batch",
    "ssimulacra2",
    "ssimulacra2_batch",
    "warm_up",
]

_FILTER_SIZE = 11


def _scales_and_filter(height: int, width: int) -> tuple[tuple[float, ...], int]:
    side = min(height, width)
    scales = len(POWER_FACTORS)
    while scales > 1 and side // 2 ** (scales - 1) < _FILTER_SIZE:
        scales -= 1
    factors = POWER_FACTORS[:scales]
    total = sum(factors)
    filter_size = max(1, min(_FILTER_SIZE, side // 2 ** (scales - 1)))
    return tuple(f / total for f in factors) if scales < len(POWER_FACTORS) else factors, filter_size


#: Side of the square pieces MS-SSIM runs over (with the rows and columns their windows reach past them),
#: so that its memory is bounded by the piece, not the image: a 24 Mpx image took 2.5 GB in one piece, and
#: oneDNN's allocator keeps what its largest tensors took. A multiple of 16, so pieces stay aligned with
#: every scale's 2× downsampling. 512 keeps about 60 MB after a 24 Mpx image (1024: 185 MB) for 35 %
#: more time.
PIECE_SIDE = 512


@tf.function(reduce_retracing=True)
def _msssim_sums(
    reference: tf.Tensor,
    candidates: tf.Tensor,
    factors: tuple[float, ...],
    filter_size: int,
    keep_rows: tf.Tensor,
    keep_columns: tf.Tensor,
) -> tf.Tensor:
    """Per scale and channel, the sum of the contrast-structure map (times luminance at the last scale)
    over the first ``keep_rows[scale]`` × ``keep_columns[scale]`` outputs of this piece: float64
    [N, scales, 3].

    The maps are ``tf.image.ssim_multiscale``'s (``max_val=255``) step for step, with a separable
    window: per scale the same maps, means and (for odd sides) symmetric padding."""
    y = tf.cast(candidates, tf.float32)
    x = tf.broadcast_to(tf.cast(reference, tf.float32)[None], tf.shape(y))
    kernel = gaussian_window(filter_size)
    sums = []
    for scale in range(len(factors)):
        if scale:
            odd = tf.shape(x)[1:3] % 2
            padding = [[0, 0], [0, odd[0]], [0, odd[1]], [0, 0]]
            x = tf.nn.avg_pool2d(tf.pad(x, padding, "SYMMETRIC"), 2, 2, "VALID")
            y = tf.nn.avg_pool2d(tf.pad(y, padding, "SYMMETRIC"), 2, 2, "VALID")
        cs = ssim_map(x, y, kernel, luminance=scale == len(factors) - 1)
        owned = cs[:, : keep_rows[scale], : keep_columns[scale]]
        sums.append(tf.reduce_sum(tf.cast(owned, tf.float64), axis=[1, 2]))
    return tf.stack(sums, axis=1)


def _pieces(length: int, overlap: int) -> list[tuple[int, int]]:
    """(start, end) of the rows (or columns) each piece owns along one side; the last reaches the end and
    is at least ``overlap`` long, so that its coarsest scale still holds a whole window. A side up to
    1.5 ``PIECE_SIDE`` is one piece: split, its pieces would read up to ``overlap`` more pixels than it has
    (a Kodak image's 768 columns: 928) for little memory saved."""
    if 2 * length <= 3 * PIECE_SIDE:
        return [(0, length)]
    starts = list(range(0, length, PIECE_SIDE))
    while len(starts) > 1 and length - starts[-1] < overlap:
        starts.pop()
    return [(start, starts[i + 1] if i + 1 < len(starts) else length) for i, start in enumerate(starts)]


def msssim_batch(reference: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """MS-SSIM of each candidate [N,H,W,3] against one uint8 reference [H,W,3]; float64 [N].

    Computed piece by piece: each piece owns the outputs of every scale that start in its rows and
    columns, and reads the pixels its windows reach past them; the sums over pieces are the whole
    image's."""
    height, width = reference.shape[:2]
    factors, filter_size = _scales_and_filter(height, width)
    scales = len(factors)
    overlap = (filter_size - 1) * 2 ** (scales - 1)  # full-resolution reach of the coarsest window
    sizes = [(height, width)]
    for _ in range(1, scales):
        sizes.append((-(-sizes[-1][0] // 2), -(-sizes[-1][1] // 2)))
    outputs = [(h - filter_size + 1, w - filter_size + 1) for h, w in sizes]

    def keep(start: int, end: int, length: int, axis: int) -> list[int]:
        last = end == length
        return [(outputs[s][axis] if last else end >> s) - (start >> s) for s in range(scales)]

    totals = np.zeros((candidates.shape[0], scales, 3), np.float64)
    for top, bottom in _pieces(height, overlap):
        rows = slice(top, height if bottom == height else bottom + overlap)
        for left, right in _pieces(width, overlap):
            columns = slice(left, width if right == width else right + overlap)
            sums = _msssim_sums(
                reference[rows, columns],
                candidates[:, rows, columns],
                factors,
                filter_size,
                tf.constant(keep(top, bottom, height, 0)),
                tf.constant(keep(left, right, width, 1)),
            )
            totals += sums.numpy()
    means = totals / np.array([h * w for h, w in outputs], np.float64)[None, :, None]
    terms = np.maximum(means, 0.0) ** np.array(factors)[None, :, None]
    # float32 maps of identical images round to a hair above 1, which MS-SSIM cannot be
    return np.minimum(np.prod(terms, axis=1).mean(axis=1), 1.0)


#: Rows and columns a piece of SSIMULACRA 2 reads past those it owns, on each side: its coarsest scale's
#: blur reaches 5 pixels, 5 · 2⁵ at full resolution, rounded to whole 32-pixel blocks so that every
#: piece downscales on the same 2× grid as the whole image.
_SSIMULACRA2_OVERLAP = 160


@tf.function(reduce_retracing=True)
def _ssimulacra2_sums(
    reference: tf.Tensor,
    candidates: tf.Tensor,
    scales: int,
    offsets: tf.Tensor,
    keep_rows: tf.Tensor,
    keep_columns: tf.Tensor,
) -> tf.Tensor:
    """Per scale, the sums of each error map and of its 4th power over the outputs this piece owns (from
    ``offsets[scale]``, ``keep_rows[scale]`` × ``keep_columns[scale]`` of them): float64
    [N, scales, 3 channels, 3 maps, 2]."""
    sums = []
    for scale, maps in enumerate(_ssimulacra2.error_maps(reference[None], candidates, scales)):
        owned = maps[
            :,
            offsets[scale, 0] : offsets[scale, 0] + keep_rows[scale],
            offsets[scale, 1] : offsets[scale, 1] + keep_columns[scale],
        ]
        # float32 sums along rows, float64 over them: a whole image's in float32 would lose digits
        rows = tf.reduce_sum(tf.stack([owned, tf.square(tf.square(owned))], axis=-1), axis=2)
        sums.append(tf.reduce_sum(tf.cast(rows, tf.float64), axis=1))
    return tf.stack(sums, axis=1)


def _ssimulacra2_pieces(length: int) -> list[tuple[int, int]]:
    """(start, end) of the rows (or columns) each piece owns along one side: ``PIECE_SIDE`` each, a
    side up to 1.5 ``PIECE_SIDE`` as one piece."""
    if 2 * length <= 3 * PIECE_SIDE:
        return [(0, length)]
    starts = list(range(0, length, PIECE_SIDE))
    if length - starts[-1] < PIECE_SIDE // 2:
        starts.pop()
    return [(start, starts[i + 1] if i + 1 < len(starts) else length) for i, start in enumerate(starts)]


def ssimulacra2_batch(reference: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """SSIMULACRA 2 of each candidate [N,H,W,3] against one uint8 reference [H,W,3]; float64 [N]
    (100: identical; a candidate that differs scores below 100). Images under 8 pixels a side have no
    score: NaN.

    Computed piece by piece, as :func:`msssim_batch`: each piece reads ``_SSIMULACRA2_OVERLAP`` pixels
    around the ones it owns, so the sums over pieces are the whole image's and memory stays bounded."""
    height, width = reference.shape[:2]
    scales = _ssimulacra2.scale_count(height, width)
    if scales == 0:
        return np.full(candidates.shape[0], np.nan)
    sizes = [(height, width)]
    for _ in range(1, scales):
        sizes.append((-(-sizes[-1][0] // 2), -(-sizes[-1][1] // 2)))

    def owned(start: int, end: int, read: int, length: int, axis: int) -> tuple[list[int], list[int]]:
        last = end == length
        offsets = [(start - read) >> s for s in range(scales)]
        keep = [(sizes[s][axis] if last else end >> s) - (start >> s) for s in range(scales)]
        return offsets, keep

    totals = np.zeros((candidates.shape[0], scales, 3, 3, 2), np.float64)
    for top, bottom in _ssimulacra2_pieces(height):
        row_read = max(0, top - _SSIMULACRA2_OVERLAP)
        rows = slice(row_read, min(height, bottom + _SSIMULACRA2_OVERLAP))
        row_offsets, keep_rows = owned(top, bottom, row_read, height, 0)
        for left, right in _ssimulacra2_pieces(width):
            column_read = max(0, left - _SSIMULACRA2_OVERLAP)
            columns = slice(column_read, min(width, right + _SSIMULACRA2_OVERLAP))
            column_offsets, keep_columns = owned(left, right, column_read, width, 1)
            sums = _ssimulacra2_sums(
                tf.constant(reference[rows, columns]),
                tf.constant(candidates[:, rows, columns]),
                scales,
                tf.constant(np.stack([row_offsets, column_offsets], axis=1), tf.int32),
                tf.constant(keep_rows, tf.int32),
                tf.constant(keep_columns, tf.int32),
            )
            totals += sums.numpy()
    means = totals / np.array([h * w for h, w in sizes], np.float64)[None, :, None, None, None]
    per_scale = _ssimulacra2.norms_from_means(tf.constant(means), floor=0.0)  # [N, scale, channel, map, norm]
    per_scale = tf.transpose(per_scale, [1, 0, 2, 4, 3])
    found = _ssimulacra2.score_from_norms(list(per_scale)).numpy()
    # float32 rounding leaves maps a hair above 0 for identical images, which the score's steep start
    # turns into 99.95: identical is 100 by definition
    identical = np.all(candidates == reference[None], axis=(1, 2, 3))
    return np.where(identical, 100.0, found)


def ssimulacra2(reference: np.ndarray, candidate: np.ndarray) -> float:
    """SSIMULACRA 2 of ``candidate`` against ``reference``, both uint8 [H,W,3]."""
    return float(ssimulacra2_batch(reference, candidate[None])[0])


def warm_up() -> None:
    """Trace MS-SSIM for images with all five scales and SSIMULACRA 2 for images with all six (two sizes,
    so the traces are shape-generic): about 2 s once, which the first request would otherwise pay."""
    for height, width in ((200, 200), (210, 190)):
        image = np.zeros((height, width, 3), np.uint8)
        msssim(image, image)
        ssimulacra2(image, image)


def msssim(reference: np.ndarray, candidate: np.ndarray) -> float:
    """MS-SSIM of ``candidate`` against ``reference``, both uint8 [H,W,3]."""
    return float(msssim_batch(reference, candidate[None])[0])


def psnr_batch(reference: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """PSNR in dB over RGB of each candidate [N,H,W,3] against the reference; inf where identical
    (in strips, so that memory does not grow with the image)."""
    squared = np.zeros(candidates.shape[0], np.float64)
    for start in range(0, reference.shape[0], PIECE_SIDE // 4):
        rows = slice(start, start + PIECE_SIDE // 4)
        diff = candidates[:, rows].astype(np.float32) - reference[rows].astype(np.float32)[None]
        squared += np.sum(np.square(diff), axis=(1, 2, 3), dtype=np.float64)
    mse = squared / reference.size
    with np.errstate(divide="ignore"):
        return np.where(mse > 0, 10.0 * np.log10(255.0**2 / np.maximum(mse, 1e-300)), np.inf)


def psnr(reference: np.ndarray, candidate: np.ndarray) -> float:
    """PSNR in dB over RGB of ``candidate`` against ``reference``."""
    return float(psnr_batch(reference, candidate[None])[0])


#: Each quality measure by the name targets and reports use.
MEASURES = {"ssimulacra2": ssimulacra2, "msssim": msssim, "psnr": psnr}
