import numpy as np
import pytest
import tensorflow as tf

from service.codec.quality import _scales_and_filter, msssim, msssim_batch, psnr


def test_msssim_is_tensorflows_definition(kodak_image: np.ndarray) -> None:
    noisy = np.clip(
        kodak_image.astype(int) + np.random.default_rng(0).integers(-20, 20, kodak_image.shape), 0, 255
    )
    noisy = noisy.astype(np.uint8)
    expected = float(
        tf.image.ssim_multiscale(
            tf.constant(kodak_image[None], tf.float32), tf.constant(noisy[None], tf.float32), 255.0
        )[0]
    )
    assert msssim(kodak_image, noisy) == pytest.approx(expected, abs=1e-5)
    assert msssim(kodak_image, kodak_image) == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("size", "tolerance"),
    [
        ((512, 768), 5e-6),
        ((481, 321), 5e-6),
        ((200, 173), 5e-6),
        ((100, 90), 5e-6),
        ((40, 61), 5e-6),
        ((12, 9), 3e-5),
    ],  # a 9-pixel filter at one scale: few windows, so float32 rounding shows more
)
def test_separable_msssim_equals_tensorflows_function(
    kodak_image: np.ndarray, size: tuple[int, int], tolerance: float
) -> None:
    """Odd sides (symmetric padding), fewer scales and smaller filters included; the two differ only
    by float32 rounding."""
    rng = np.random.default_rng(size[0])
    reference = np.ascontiguousarray(kodak_image[: size[0], : size[1]])
    candidates = np.clip(reference.astype(int) + rng.integers(-30, 30, (3, *reference.shape)), 0, 255)
    candidates[2] = 255 - reference  # a poor match too
    factors, filter_size = _scales_and_filter(*size)
    expected = tf.image.ssim_multiscale(
        tf.constant(np.broadcast_to(reference, candidates.shape), tf.float32),
        tf.constant(candidates, tf.float32),
        255.0,
        power_factors=factors,
        filter_size=filter_size,
    ).numpy()
    np.testing.assert_allclose(msssim_batch(reference, candidates.astype(np.uint8)), expected, atol=tolerance)


@pytest.mark.parametrize("shape", [(1, 1, 3), (7, 13, 3), (3, 10000, 3), (100, 90, 3)])
def test_small_images_get_a_defined_score(shape: tuple[int, int, int]) -> None:
    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, shape, dtype=np.uint8)
    assert msssim(a, a) == pytest.approx(1.0)
    assert msssim(a, 255 - a) < 0.9


def test_psnr() -> None:
    a = np.zeros((4, 4, 3), np.uint8)
    b = a.copy()
    b[0, 0, 0] = 255
    assert psnr(a, b) == pytest.approx(10 * np.log10(255**2 / (255**2 / 48)))
    assert psnr(a, a) == float("inf")
