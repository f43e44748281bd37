import numpy as np
import pytest
import tensorflow as tf

from service.codec import quality
from service.codec.quality import _scales_and_filter, msssim, msssim_batch, psnr, psnr_batch


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
        # taller than a strip; TF's float32 means drift more on big images (ours sum in float64)
        ((1300, 500), 2e-5),
        ((1041, 333), 2e-5),  # a remainder shorter than the windows' reach joins the strip above
        ((1700, 129), 2e-5),  # four scales in strips
    ],  # a 9-pixel filter at one scale: few windows, so float32 rounding shows more
)
def test_separable_msssim_equals_tensorflows_function(
    kodak_image: np.ndarray, size: tuple[int, int], tolerance: float
) -> None:
    """Odd sides (symmetric padding), fewer scales and smaller filters included; the two differ only
    by float32 rounding."""
    rng = np.random.default_rng(size[0])
    tall = np.concatenate([kodak_image, kodak_image[::-1], kodak_image, kodak_image[::-1]], axis=0)
    reference = np.ascontiguousarray(tall[: size[0], : size[1]])
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


@pytest.mark.parametrize("size", [(1300, 700), (1041, 333), (1700, 129)])
def test_msssim_in_pieces_is_the_whole_images(
    kodak_image: np.ndarray, size: tuple[int, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    tall = np.concatenate([kodak_image, kodak_image[::-1], kodak_image, kodak_image[::-1]], axis=0)
    reference = np.ascontiguousarray(tall[: size[0], : size[1]])
    rng = np.random.default_rng(3)
    candidates = np.clip(reference.astype(int) + rng.integers(-30, 30, (2, *reference.shape)), 0, 255)
    monkeypatch.setattr(quality, "PIECE_SIDE", 256)  # pieces along both sides
    striped = msssim_batch(reference, candidates.astype(np.uint8))
    monkeypatch.setattr(quality, "PIECE_SIDE", 1 << 20)
    np.testing.assert_allclose(striped, msssim_batch(reference, candidates.astype(np.uint8)), atol=1e-9)


def test_psnr_in_strips_is_the_whole_images() -> None:
    rng = np.random.default_rng(2)
    a = rng.integers(0, 256, (1100, 70, 3), dtype=np.uint8)
    b = rng.integers(0, 256, (2, 1100, 70, 3), dtype=np.uint8)
    mse = np.mean((b.astype(float) - a.astype(float)) ** 2, axis=(1, 2, 3))
    np.testing.assert_allclose(psnr_batch(a, b), 10 * np.log10(255**2 / mse), rtol=1e-12)


def test_psnr() -> None:
    a = np.zeros((4, 4, 3), np.uint8)
    b = a.copy()
    b[0, 0, 0] = 255
    assert psnr(a, b) == pytest.approx(10 * np.log10(255**2 / (255**2 / 48)))
    assert psnr(a, a) == float("inf")
