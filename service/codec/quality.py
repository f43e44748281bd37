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


@tf.function(reduce_retracing=True)
def _msssim_tf(
    reference: tf.Tensor, candidates: tf.Tensor, factors: tuple[float, ...], filter_size: int
) -> tf.Tensor:
    """``tf.image.ssim_multiscale(reference, candidates, 255, factors, filter_size)`` with a separable
    window: per scale the same maps, means, ReLUs and (for odd sides) symmetric padding."""
    y = tf.cast(candidates, tf.float32)
    x = tf.broadcast_to(tf.cast(reference, tf.float32)[None], tf.shape(y))
    kernel = gaussian_window(filter_size)
    c1, c2 = (0.01 * 255.0) ** 2, (0.03 * 255.0) ** 2
    terms = []
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
        if scale < len(factors) - 1:
            terms.append(tf.nn.relu(tf.reduce_mean(cs, axis=[1, 2])))
        else:
            luminance = (num0 + c1) / (den0 + c1)
            terms.append(tf.nn.relu(tf.reduce_mean(luminance * cs, axis=[1, 2])))
    per_channel = tf.reduce_prod(tf.pow(tf.stack(terms, axis=-1), tf.constant(factors)), axis=-1)
    return tf.reduce_mean(per_channel, axis=-1)


def msssim_batch(reference: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """MS-SSIM of each candidate [N,H,W,3] against one uint8 reference [H,W,3]; float64 [N]."""
    factors, filter_size = _scales_and_filter(reference.shape[0], reference.shape[1])
    values = _msssim_tf(reference, candidates, factors, filter_size)
    return np.asarray(values, dtype=np.float64)


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
    """PSNR in dB over RGB of each candidate [N,H,W,3] against the reference; inf where identical."""
    diff = candidates.astype(np.float32) - reference.astype(np.float32)[None]
    mse = np.mean(np.square(diff), axis=(1, 2, 3), dtype=np.float64)
    with np.errstate(divide="ignore"):
        return np.where(mse > 0, 10.0 * np.log10(255.0**2 / np.maximum(mse, 1e-300)), np.inf)


def psnr(reference: np.ndarray, candidate: np.ndarray) -> float:
    """PSNR in dB over RGB of ``candidate`` against ``reference``."""
    return float(psnr_batch(reference, candidate[None])[0])
