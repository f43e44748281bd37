"""SSIMULACRA 2.1 (libjxl's perceptual metric) in TensorFlow: one definition for the gateway's reported
scores, rate control's measurements, the benchmarks and the training loss (it is differentiable).

::

    sRGB ─▶ linear ─┬─▶ XYB (made positive) ─▶ blurs (σ 1.5) ─▶ SSIM map, edge maps ─▶ 1- and 4-norms
                    └─▶ 2×2 mean ─▶ (next of 6 scales, while the side is at least 8 px)
    108 norms ─▶ weighted sum ─▶ polynomial ─▶ 100 − 10·x^0.628

As libjxl's ``tools/ssimulacra2.cc`` (version 2.1, the weights and constants its score uses): downscaling
in linear RGB, XYB computed per scale, SSIM without the luminance denominator, Gaussian blurs zero-padded
at the borders. libjxl blurs with a recursive (IIR) Gaussian whose impulse response is finite (a sum of
three cosines, 9 non-zero taps at σ = 1.5): here that response as an FIR kernel, zero-padded the same way
(``tests/model_export/test_ssimulacra2.py`` checks the scores against libjxl's). Scores: 100 identical,
90 visually lossless, 70 high quality, 50 medium, 30 low.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

__all__ = [
    "MIN_SIDE",
    "WEIGHTS",
    "error_maps",
    "linear_rgb",
    "norms",
    "norms_from_means",
    "scale_count",
    "score",
    "score_from_norms",
    "scores",
]

#: Scales are added while both sides are at least this long (before each 2× downscale).
MIN_SIDE = 8
_SCALES = 6
_C2 = 0.0009
_SIGMA = 1.5

_OPSIN = np.array(
    [
        [0.30, 0.622, 0.078],
        [0.23, 0.692, 0.078],
        [0.24342268924547819, 0.20476744424496821, 0.5518098665095536],
    ],
    np.float32,
)
_OPSIN_BIAS = 0.0037930732552754493

#: libjxl's 108 weights, in its order: per channel (X, Y, B), per scale, per norm (1, 4), the SSIM map,
#: the artifact (ringing, blocking) map and the detail-lost (blurring) map.
WEIGHTS = np.array(
    [
        0.0, 0.000_737_660_670_740_658_6, 0.0, 0.0, 0.000_779_348_168_286_730_9, 0.0,
        0.0, 0.000_437_115_573_010_737_9, 0.0, 1.104_172_642_665_734_6, 0.000_662_848_341_292_71,
        0.000_152_316_327_837_187_52, 0.0, 0.001_640_643_745_659_975_4, 0.0,
        1.842_245_552_053_929_8, 11.441_172_603_757_666, 0.0, 0.000_798_910_943_601_516_3,
        0.000_176_816_438_078_653, 0.0, 1.878_759_497_954_638_7, 10.949_069_906_051_42, 0.0,
        0.000_728_934_699_150_807_2, 0.967_793_708_062_683_3, 0.0, 0.000_140_034_242_854_358_84,
        0.998_176_697_785_496_7, 0.000_319_497_559_344_350_53, 0.000_455_099_211_379_206_3, 0.0,
        0.0, 0.001_364_876_616_324_339_8, 0.0, 0.0, 0.0, 0.0, 0.0, 7.466_890_328_078_848, 0.0,
        17.445_833_984_131_262, 0.000_623_560_163_404_146_6, 0.0, 0.0, 6.683_678_146_179_332,
        0.000_377_244_079_796_112_96, 1.027_889_937_768_264, 225.205_153_008_492_74, 0.0, 0.0,
        19.213_238_186_143_016, 0.001_140_152_458_661_836_1, 0.001_237_755_635_509_985,
        176.393_175_984_506_94, 0.0, 0.0, 24.433_009_998_704_76, 0.285_208_026_121_177_57,
        0.000_448_543_692_383_340_8, 0.0, 0.0, 0.0, 34.779_063_444_837_72, 44.835_625_328_877_896,
        0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.000_868_055_657_329_169_8, 0.0, 0.0, 0.0, 0.0,
        0.0, 0.000_531_319_187_435_874_7, 0.0, 0.000_165_338_141_613_791_12, 0.0, 0.0, 0.0, 0.0,
        0.0, 0.000_417_917_180_325_133_6, 0.001_729_082_823_472_283_3, 0.0,
        0.002_082_700_584_663_643_7, 0.0, 0.0, 8.826_982_764_996_862, 23.192_433_439_989_26, 0.0,
        95.108_049_881_108_6, 0.986_397_803_440_068_2, 0.983_438_279_246_535_3,
        0.001_228_640_504_827_849_3, 171.266_725_589_730_7, 0.980_785_887_243_537_9, 0.0, 0.0,
        0.0, 0.000_513_006_458_899_067_9, 0.0, 0.000_108_540_578_584_115_37,
    ],
    np.float64,
)  # fmt: skip
assert WEIGHTS.shape == (108,)


def _kernel(sigma: float = _SIGMA) -> np.ndarray:
    """The impulse response of libjxl's recursive Gaussian (``CreateRecursiveGaussian``, after
    Charalampidis 2016): a sum of three cosines over ``round(3.2795 σ + 0.2546)`` taps each side, which
    its IIR recursion computes exactly. As an FIR kernel it gives libjxl's blur, borders included."""
    radius = round(3.2795 * sigma + 0.2546)
    omega = np.pi / (2 * radius) * np.array([1.0, 3.0, 5.0])
    p = np.array([1.0, -1.0, 1.0]) / np.tan(0.5 * omega)
    r = np.array([1.0, -1.0, 1.0]) * p * p / np.sin(omega)
    rho = np.exp(-0.5 * sigma * sigma * omega * omega) / radius
    d_13, d_35, d_51 = p[0] * r[1] - r[0] * p[1], p[1] * r[2] - r[1] * p[2], p[2] * r[0] - r[2] * p[0]
    zeta_15, zeta_35 = d_35 / d_13, d_51 / d_13
    system = np.array([p, r, [zeta_15, zeta_35, 1.0]])
    gamma = np.array([1.0, radius * radius - sigma * sigma, zeta_15 * rho[0] + zeta_35 * rho[1] + rho[2]])
    beta = np.linalg.solve(system, gamma)
    taps = np.arange(1 - radius, radius)  # the response is 0 at ±radius
    return (beta[:, None] * np.cos(omega[:, None] * taps[None])).sum(axis=0).astype(np.float32)


_KERNEL = _kernel()


def linear_rgb(srgb: tf.Tensor) -> tf.Tensor:
    """sRGB values in [0, 255] (any float or integer dtype) to linear light in [0, 1], float32."""
    v = tf.cast(srgb, tf.float32) / 255.0
    # the pow's gradient at 0 is undefined: the branch below the knee never takes it
    high = tf.pow((tf.maximum(v, 0.04045) + 0.055) / 1.055, 2.4)
    return tf.where(v <= 0.04045, v / 12.92, high)


def _positive_xyb(linear: tf.Tensor) -> tf.Tensor:
    """Linear RGB [..., 3] to SSIMULACRA 2's XYB, each channel shifted and scaled into about [0, 1]."""
    mixed = tf.maximum(tf.tensordot(linear, tf.constant(_OPSIN.T), axes=1) + _OPSIN_BIAS, 1e-12)
    lms = tf.pow(mixed, 1.0 / 3.0) - _OPSIN_BIAS ** (1.0 / 3.0)
    long, medium, short = tf.unstack(lms, axis=-1)
    x = 0.5 * (long - medium)
    y = 0.5 * (long + medium)
    return tf.stack([14.0 * x + 0.42, y + 0.01, short - y + 0.55], axis=-1)


def _blur(x: tf.Tensor) -> tf.Tensor:
    """Gaussian blur (σ 1.5) of [B,H,W,C] per channel, zero-padded, as two 1-D depthwise passes."""
    channels = x.shape[-1]
    kernel = tf.constant(_KERNEL)
    vertical = tf.tile(kernel[:, None, None, None], [1, 1, channels, 1])
    horizontal = tf.tile(kernel[None, :, None, None], [1, 1, channels, 1])
    x = tf.nn.depthwise_conv2d(x, vertical, [1, 1, 1, 1], "SAME")
    return tf.nn.depthwise_conv2d(x, horizontal, [1, 1, 1, 1], "SAME")


def _downscale(linear: tf.Tensor) -> tf.Tensor:
    """2×2 means; an odd side repeats its last row or column (libjxl clamps the index)."""
    odd = tf.shape(linear)[1:3] % 2
    padding = [[0, 0], [0, odd[0]], [0, odd[1]], [0, 0]]
    return tf.nn.avg_pool2d(tf.pad(linear, padding, "SYMMETRIC"), 2, 2, "VALID")


def scale_count(height: int, width: int) -> int:
    """How many scales libjxl scores for an image of these sides."""
    count, side = 0, min(height, width)
    for scale in range(_SCALES):
        if side < MIN_SIDE:
            break
        if scale:
            side = (side + 1) // 2
        count += 1
    return count


def error_maps(reference: tf.Tensor, distorted: tf.Tensor, scales: int) -> list[tf.Tensor]:
    """Per scale, the three error maps of sRGB images [B,H,W,3] in [0, 255] (``reference`` may have
    batch 1): float32 [B, h, w, 3 channels, 3 maps] (SSIM, artifact, detail lost), all non-negative."""
    linear_1 = linear_rgb(reference)
    linear_2 = linear_rgb(distorted)
    found = []
    for scale in range(scales):
        if scale:
            linear_1, linear_2 = _downscale(linear_1), _downscale(linear_2)
        image_2 = _positive_xyb(linear_2)
        image_1 = tf.broadcast_to(_positive_xyb(linear_1), tf.shape(image_2))
        blurred = _blur(
            tf.concat([image_1, image_2, image_1 * image_1, image_2 * image_2, image_1 * image_2], -1)
        )
        mu_1, mu_2, s_11, s_22, s_12 = tf.split(blurred, 5, axis=-1)
        num_m = 1.0 - tf.square(mu_1 - mu_2)
        num_s = 2.0 * (s_12 - mu_1 * mu_2) + _C2
        denom_s = (s_11 - tf.square(mu_1)) + (s_22 - tf.square(mu_2)) + _C2
        ssim = tf.nn.relu(1.0 - num_m * num_s / denom_s)
        ratio = (1.0 + tf.abs(image_2 - mu_2)) / (1.0 + tf.abs(image_1 - mu_1)) - 1.0
        found.append(tf.stack([ssim, tf.nn.relu(ratio), tf.nn.relu(-ratio)], axis=-1))
    return found


def norms_from_means(means: tf.Tensor, floor: float = 1e-30) -> tf.Tensor:
    """[..., 2] means of each map and of its 4th power to the 1-norm and 4-norm. The 4th root's gradient
    at 0 is infinite: ``floor`` (added under the root) keeps it finite for training; 0 gives the exact
    norm (identical images score 100)."""
    return tf.stack([means[..., 0], tf.pow(means[..., 1] + floor, 0.25)], axis=-1)


def norms(reference: tf.Tensor, distorted: tf.Tensor) -> list[tf.Tensor]:
    """SSIMULACRA 2's norms per scale of whole images (static sides): for each scale a float32
    [B, 3 channels, 2 norms, 3 maps]."""
    scales = scale_count(int(distorted.shape[1]), int(distorted.shape[2]))
    found = []
    for maps in error_maps(reference, distorted, scales):
        means = tf.reduce_mean(tf.stack([maps, tf.square(tf.square(maps))], axis=-1), axis=[1, 2])
        found.append(tf.transpose(norms_from_means(means), [0, 1, 3, 2]))
    return found


def score_from_norms(per_scale: list[tf.Tensor]) -> tf.Tensor:
    """The score [B] (float64) from :func:`norms`' output; weights follow the scales there are."""
    stacked = tf.cast(tf.stack(per_scale, axis=2), tf.float64)  # [B, channel, scale, norm, map]
    count = 3 * len(per_scale) * 6
    weighted = tf.reduce_sum(tf.reshape(tf.abs(stacked), [-1, count]) * tf.constant(WEIGHTS[:count]), axis=-1)
    x = weighted * 0.956_238_261_683_484_4
    x = 2.326_765_642_916_932 * x - 0.020_884_521_182_843_837 * x**2 + 6.248_496_625_763_138e-5 * x**3
    safe = tf.maximum(x, 1e-30)
    perfect = tf.fill(tf.shape(x), tf.constant(100.0, tf.float64))
    return tf.where(x > 0.0, 100.0 - 10.0 * tf.pow(safe, 0.627_633_646_783_138_7), perfect)


def scores(reference: tf.Tensor, distorted: tf.Tensor) -> tf.Tensor:
    """SSIMULACRA 2 of each distorted image [B,H,W,3] against ``reference`` ([1 or B,H,W,3]), sRGB in
    [0, 255]: float64 [B]. Differentiable in ``distorted``."""
    return score_from_norms(norms(reference, distorted))


def score(reference: np.ndarray, distorted: np.ndarray) -> float:
    """SSIMULACRA 2 of one uint8 [H,W,3] image against another."""
    return float(scores(tf.constant(reference[None]), tf.constant(distorted[None]))[0])
