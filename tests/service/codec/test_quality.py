import numpy as np
import pytest
import tensorflow as tf

from service.codec.quality import msssim, psnr


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
