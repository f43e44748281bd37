"""Image quality metrics: MS-SSIM (TensorFlow's definition) and PSNR, on RGB uint8.

One implementation for the gateway's reported numbers, evaluation and benchmarks. MS-SSIM is
``tf.image.ssim_multiscale`` with ``max_val=255``, computed the same way step for step but with the
Gaussian window applied as two 1-D passes (twice as fast on a Kodak image; tests check it equals TF's
function to 5e-6, float32 rounding). Images too small for its five scales use as many scales as fit (weights
renormalised) and a filter no larger than the image.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from model_export.quality_terms import POWER_FACTORS, gaussian_blur, gaussian_window

__all__ = ["msssim", "msssim_batch", "psnr", "psnr_batch", "warm_up"]

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


#: Rows per strip: MS-SSIM runs over horizontal strips (with the rows their windows reach past them), so
#: its memory is bounded by the strip, not the image (a 24 Mpx image took 2.5 GB in one piece). A multiple
#: of 16, so strips stay aligned with every scale's 2× downsampling.
STRIP_ROWS = 512


@tf.function(reduce_retracing=True)
def _msssim_sums(
    reference: tf.Tensor, candidates: tf.Tensor, factors: tuple[float, ...], filter_size: int, keep: tf.Tensor
) -> tf.Tensor:
    """Per scale and channel, the sum of the contrast-structure map (times luminance at the last scale)
    over the first ``keep[scale]`` output rows of this strip: float32 [N, scales, 3].

    The maps are ``tf.image.ssim_multiscale``'s (``max_val=255``) step for step, with a separable
    window: per scale the same maps, means and (for odd sides) symmetric padding."""
    y = tf.cast(candidates, tf.float32)
    x = tf.broadcast_to(tf.cast(reference, tf.float32)[None], tf.shape(y))
    kernel = gaussian_window(filter_size)
    c1, c2 = (0.01 * 255.0) ** 2, (0.03 * 255.0) ** 2
    sums = []
    for scale in range(len(factors)):
        if scale:
            odd = tf.shape(x)[1:3] % 2
            padding = [[0, 0], [0, odd[0]], [0, odd[1]], [0, 0]]
            x = tf.nn.avg_pool2d(tf.pad(x, padding, "SYMMETRIC"), 2, 2, "VALID")
            y = tf.nn.avg_pool2d(tf.pad(y, padding, "SYMMETRIC"), 2, 2, "VALID")
        mean_x, mean_y = gaussian_blur(x, kernel), gaussian_blur(y, kernel)
        num0 = mean_x * mean_y * 2.0
        den0 = tf.square(mean_x) + tf.square(mean_y)
        num1 = gaussian_blur(x * y, kernel) * 2.0
        den1 = gaussian_blur(tf.square(x) + tf.square(y), kernel)
        cs = (num1 - num0 + c2) / (den1 - den0 + c2)
        if scale == len(factors) - 1:
            cs = cs * (num0 + c1) / (den0 + c1)
        sums.append(tf.reduce_sum(tf.cast(cs[:, : keep[scale]], tf.float64), axis=[1, 2]))
    return tf.stack(sums, axis=1)


def _strips(height: int, overlap: int) -> list[tuple[int, int]]:
    """(start, end) of the rows each strip owns; the last reaches the bottom and is at least ``overlap``
    rows high, so that its coarsest scale still holds a whole window."""
    starts = list(range(0, height, STRIP_ROWS))
    while len(starts) > 1 and height - starts[-1] < overlap:
        starts.pop()
    return [(start, starts[i + 1] if i + 1 < len(starts) else height) for i, start in enumerate(starts)]


def msssim_batch(reference: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """MS-SSIM of each candidate [N,H,W,3] against one uint8 reference [H,W,3]; float64 [N].

    Computed strip by strip: each strip owns the output rows of every scale that start in its rows, and
    reads the rows its windows reach below them; the sums over strips are the whole image's."""
    height, width = reference.shape[:2]
    factors, filter_size = _scales_and_filter(height, width)
    scales = len(factors)
    unit = 2 ** (scales - 1)  # full-resolution rows per row of the coarsest scale
    overlap = (filter_size - 1) * unit
    sizes = [(height, width)]
    for _ in range(1, scales):
        sizes.append((-(-sizes[-1][0] // 2), -(-sizes[-1][1] // 2)))
    outputs = [(h - filter_size + 1, w - filter_size + 1) for h, w in sizes]
    totals = np.zeros((candidates.shape[0], scales, 3), np.float64)
    for start, end in _strips(height, overlap):
        stop = height if end == height else end + overlap
        keep = [(outputs[s][0] if end == height else end >> s) - (start >> s) for s in range(scales)]
        sums = _msssim_sums(
            reference[start:stop], candidates[:, start:stop], factors, filter_size, tf.constant(keep)
        )
        totals += sums.numpy()
    means = totals / np.array([h * w for h, w in outputs], np.float64)[None, :, None]
    terms = np.maximum(means, 0.0) ** np.array(factors)[None, :, None]
    # float32 maps of identical images round to a hair above 1, which MS-SSIM cannot be
    return np.minimum(np.prod(terms, axis=1).mean(axis=1), 1.0)


def warm_up() -> None:
    """Trace MS-SSIM for images with all five scales (two sizes, so the trace is shape-generic): about
    1 s once, which the first request would otherwise pay."""
    for height, width in ((200, 200), (210, 190)):
        image = np.zeros((height, width, 3), np.uint8)
        msssim(image, image)


def msssim(reference: np.ndarray, candidate: np.ndarray) -> float:
    """MS-SSIM of ``candidate`` against ``reference``, both uint8 [H,W,3]."""
    return float(msssim_batch(reference, candidate[None])[0])


def psnr_batch(reference: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """PSNR in dB over RGB of each candidate [N,H,W,3] against the reference; inf where identical
    (strip by strip, so that memory does not grow with the image)."""
    squared = np.zeros(candidates.shape[0], np.float64)
    for start in range(0, reference.shape[0], STRIP_ROWS):
        rows = slice(start, start + STRIP_ROWS)
        diff = candidates[:, rows].astype(np.float32) - reference[rows].astype(np.float32)[None]
        squared += np.sum(np.square(diff), axis=(1, 2, 3), dtype=np.float64)
    mse = squared / reference.size
    with np.errstate(divide="ignore"):
        return np.where(mse > 0, 10.0 * np.log10(255.0**2 / np.maximum(mse, 1e-300)), np.inf)


def psnr(reference: np.ndarray, candidate: np.ndarray) -> float:
    """PSNR in dB over RGB of ``candidate`` against ``reference``."""
    return float(psnr_batch(reference, candidate[None])[0])
