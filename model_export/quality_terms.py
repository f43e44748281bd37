"""Per-cell MS-SSIM terms and squared errors, computed inside the exported graph for rate control.

MS-SSIM as ``tf.image.ssim_multiscale`` defines it is, per colour channel and scale, a mean over
filter-window positions (of the contrast-structure map at scales 1-4, of the full SSIM map at
scale 5), combined as a weighted geometric mean and averaged over channels. Summing each map over
the windows centred in a 16×16 cell lets the gateway evaluate MS-SSIM for *any* choice of
per-patch iteration counts by adding cell sums, without another pass over the pixels:

    mean[c, j] = Σ_cells sums[cell, c, j] / Σ_cells positions[cell, j]
    MS-SSIM    = mean_c Π_j relu(mean[c, j]) ** POWER_FACTORS[j]

For one uniform count this is MS-SSIM of the whole (padded) image, to float rounding. Mixing
counts across patches is an estimate (windows straddling patch borders see both), which is why the
gateway measures the image it finally sends. A scale too small for the 11-pixel filter contributes
no positions, and the gateway leaves it out as ``service/codec/quality.py`` does.
"""

from __future__ import annotations

import tensorflow as tf

__all__ = [
    "POWER_FACTORS",
    "cell_squared_errors",
    "gaussian_blur",
    "gaussian_window",
    "msssim_cell_terms",
    "msssim_per_image",
    "ssim_map",
    "whole_image_quality",
]

POWER_FACTORS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
_FILTER_SIZE, _FILTER_SIGMA = 11, 1.5
_C1, _C2 = (0.01 * 255.0) ** 2, (0.03 * 255.0) ** 2
_CELL = 16


def gaussian_window(size: int = _FILTER_SIZE) -> tf.Tensor:
    """The 1-D factor of TF's SSIM window of ``size`` taps, σ = 1.5 (its 2-D window, a softmax of
    summed squares, is exactly the outer product of this with itself)."""
    coords = tf.range(size, dtype=tf.float32) - (size - 1) / 2.0
    return tf.nn.softmax(-0.5 * tf.square(coords) / _FILTER_SIGMA**2)


def gaussian_blur(x: tf.Tensor, kernel: tf.Tensor) -> tf.Tensor:
    """Window mean ('VALID') of [B,H,W,C] ``x``, per channel, as two 1-D depthwise convolutions
    with ``kernel`` from ``gaussian_window`` (5.5× fewer multiplications than the 2-D window)."""
    channels = tf.shape(x)[-1]
    vertical = tf.tile(kernel[:, None, None, None], [1, 1, channels, 1])
    horizontal = tf.tile(kernel[None, :, None, None], [1, 1, channels, 1])
    x = tf.nn.depthwise_conv2d(x, vertical, [1, 1, 1, 1], "VALID")
    return tf.nn.depthwise_conv2d(x, horizontal, [1, 1, 1, 1], "VALID")


def ssim_map(x: tf.Tensor, y: tf.Tensor, kernel: tf.Tensor, luminance: bool) -> tf.Tensor:
    """The contrast-structure map of one scale ('VALID' windows), times the luminance term if asked.

    The four window means go through one depthwise convolution of their channels side by side: on
    this CPU a call costs about the same for 3 channels as for 12, so one call instead of four halves
    the gateway's MS-SSIM of a Kodak image (0.42 → 0.20 s; it measures every allocation it tries)."""
    channels = x.shape[-1]
    means = gaussian_blur(tf.concat([x, y, x * y, tf.square(x) + tf.square(y)], axis=-1), kernel)
    mean_x, mean_y, mean_xy, mean_squares = tf.split(means, [channels] * 4, axis=-1)
    num0 = 2.0 * mean_x * mean_y
    den0 = tf.square(mean_x) + tf.square(mean_y)
    num1 = 2.0 * mean_xy
    cs = (num1 - num0 + _C2) / (mean_squares - den0 + _C2)
    return cs * (num0 + _C1) / (den0 + _C1) if luminance else cs


def _to_cells(values: tf.Tensor, factor: int) -> tf.Tensor:
    """Sum a 'VALID' map at scale ``factor`` over the windows centred in each 16×16 cell."""
    half = _FILTER_SIZE // 2
    centred = tf.pad(values, [[0, 0], [half, half], [half, half], [0, 0]])
    side = _CELL // factor
    return tf.nn.avg_pool2d(centred, side, side, "VALID") * float(side * side)


def msssim_cell_terms(reference: tf.Tensor, image: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """MS-SSIM map sums and window counts per cell.

    ``reference`` and ``image`` are float32 [B,H,W,3] in [0, 255], H and W multiples of 16.
    Returns ``sums`` [B,h,w,3,5] and ``positions`` [B,h,w,5] (h = H/16, w = W/16).
    """
    kernel = gaussian_window()
    x, y = reference, image
    cells = tf.shape(reference)[:3] // [1, _CELL, _CELL]
    sums, positions = [], []
    for scale in range(len(POWER_FACTORS)):
        if scale:
            x = tf.nn.avg_pool2d(x, 2, 2, "VALID")
            y = tf.nn.avg_pool2d(y, 2, 2, "VALID")
        factor = 2**scale
        last = scale == len(POWER_FACTORS) - 1

        def terms(x=x, y=y, factor=factor, last=last) -> tuple[tf.Tensor, tf.Tensor]:
            value = ssim_map(x, y, kernel, last)
            return _to_cells(value, factor), _to_cells(tf.ones_like(value[..., :1]), factor)

        def too_small() -> tuple[tf.Tensor, tf.Tensor]:
            zeros = tf.zeros(tf.concat([cells, [1]], 0))
            return tf.tile(zeros, [1, 1, 1, 3]), zeros

        fits = tf.logical_and(tf.shape(x)[1] >= _FILTER_SIZE, tf.shape(x)[2] >= _FILTER_SIZE)
        scale_sums, scale_positions = tf.cond(fits, terms, too_small)
        sums.append(scale_sums)
        positions.append(scale_positions[..., 0])
    return tf.stack(sums, axis=-1), tf.stack(positions, axis=-1)


def cell_squared_errors(reference: tf.Tensor, image: tf.Tensor) -> tf.Tensor:
    """Sum of squared errors over each 16×16 cell and the three channels, [B,h,w]."""
    error = tf.reduce_sum(tf.square(reference - image), axis=-1, keepdims=True)
    return tf.nn.avg_pool2d(error, _CELL, _CELL, "VALID")[..., 0] * float(_CELL * _CELL)


def whole_image_quality(
    sums: tf.Tensor, positions: tf.Tensor, squared_errors: tf.Tensor
) -> tuple[tf.Tensor, tf.Tensor]:
    """MS-SSIM and PSNR (dB) of each whole image [B] from its cell terms (as the gateway adds them)."""
    totals = tf.reduce_sum(sums, axis=[1, 2])  # [B,3,5]
    counts = tf.reduce_sum(positions, axis=[1, 2])[:, None, :]  # [B,1,5]
    valid = counts > 0
    weights = tf.where(valid, tf.constant(POWER_FACTORS), 0.0)
    renormalise = tf.logical_not(tf.reduce_all(valid, axis=-1, keepdims=True))  # as the gateway does
    weights = tf.where(renormalise, weights / tf.reduce_sum(weights, axis=-1, keepdims=True), weights)
    means = tf.nn.relu(totals / tf.maximum(counts, 1.0))
    per_channel = tf.reduce_prod(tf.where(valid, tf.pow(means, weights), 1.0), axis=-1)
    samples = tf.cast(tf.reduce_prod(tf.shape(squared_errors)[1:]), tf.float32) * float(_CELL * _CELL * 3)
    mse = tf.reduce_sum(squared_errors, axis=[1, 2]) / samples
    return tf.reduce_mean(per_channel, axis=-1), 10.0 * tf.math.log(255.0**2 / mse) / tf.math.log(10.0)


def msssim_per_image(reference: tf.Tensor, image: tf.Tensor, cover_border: bool = False) -> tf.Tensor:
    """Differentiable MS-SSIM of each image [B], the training loss's quality term.

    ``reference`` and ``image`` are float32 [B,H,W,3] in [0, 255] with a static size. As
    ``tf.image.ssim_multiscale`` (mean over channels), except that scales too small for the
    11-pixel window are left out with the weights renormalised, as the gateway measures small
    images, and the last scale that fits carries the luminance term, so that a 128-pixel training
    crop (four scales) still rewards the right brightness and colour.

    With ``cover_border``, each scale is mirrored by half a window at its edges before its map, so
    that a window is centred on every pixel: MS-SSIM's own windows stay inside the image, and at
    scale 4 of a 128-pixel crop none is centred within 40 px of its border, a ring the network
    would otherwise learn to neglect (docs/decisions.md 37).
    """
    kernel = gaussian_window()
    x, y = reference, image
    fitting = [s for s in range(len(POWER_FACTORS)) if min(reference.shape[1:3]) // 2**s >= _FILTER_SIZE]
    weights = [POWER_FACTORS[s] for s in fitting]
    total = sum(weights)
    log_msssim = 0.0
    for scale in fitting:
        if scale:
            x = tf.nn.avg_pool2d(x, 2, 2, "VALID")
            y = tf.nn.avg_pool2d(y, 2, 2, "VALID")
        if cover_border:
            half = _FILTER_SIZE // 2
            mirror = [[0, 0], [half, half], [half, half], [0, 0]]
            value = ssim_map(
                tf.pad(x, mirror, "REFLECT"), tf.pad(y, mirror, "REFLECT"), kernel, scale == fitting[-1]
            )
        else:
            value = ssim_map(x, y, kernel, scale == fitting[-1])
        mean = tf.maximum(tf.reduce_mean(value, axis=[1, 2]), 1e-4)  # [B,3]
        log_msssim += POWER_FACTORS[scale] / total * tf.math.log(mean)
    return tf.reduce_mean(tf.exp(log_msssim), axis=-1)
