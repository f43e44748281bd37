"""Image quality metrics: MS-SSIM (TensorFlow's definition) and PSNR, on RGB uint8.

One implementation for the gateway's reported numbers, evaluation and benchmarks. MS-SSIM is
``tf.image.ssim_multiscale`` with ``max_val=255``; images too small for its five scales use as
many scales as fit (weights renormalised) and a filter no larger than the image.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from model_export.quality_terms import POWER_FACTORS

__all__ = ["msssim", "msssim_batch", "psnr", "psnr_batch"]

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
    ref = tf.cast(reference, tf.float32)[None]
    cand = tf.cast(candidates, tf.float32)
    return tf.image.ssim_multiscale(
        tf.broadcast_to(ref, tf.shape(cand)), cand, 255.0, power_factors=factors, filter_size=filter_size
    )


def msssim_batch(reference: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """MS-SSIM of each candidate [N,H,W,3] against one uint8 reference [H,W,3]; float64 [N]."""
    factors, filter_size = _scales_and_filter(reference.shape[0], reference.shape[1])
    values = _msssim_tf(reference, candidates, factors, filter_size)
    return np.asarray(values, dtype=np.float64)


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
