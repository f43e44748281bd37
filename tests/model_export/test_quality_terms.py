"""The graph's per-cell quality terms add up to the gateway's reported MS-SSIM and PSNR."""

import numpy as np
import pytest
import tensorflow as tf

from model_export.quality_terms import cell_squared_errors, msssim_cell_terms, whole_image_quality
from service.codec.patches import Geometry
from service.codec.quality import msssim, psnr
from service.codec.rate_control import QualityTable

_SPEC = tf.TensorSpec([None, None, None, 3], tf.float32)
_terms = tf.function(msssim_cell_terms, input_signature=[_SPEC, _SPEC])


@pytest.mark.parametrize(("height", "width"), [(256, 384), (160, 208), (48, 64)])
def test_uniform_estimate_equals_measured_quality(kodak_image, height: int, width: int) -> None:
    reference = np.ascontiguousarray(kodak_image[:height, :width])
    noise = np.random.default_rng(1).integers(-25, 26, reference.shape)
    image = np.clip(reference.astype(int) + noise, 0, 255).astype(np.uint8)
    ref, img = tf.constant(reference[None], tf.float32), tf.constant(image[None], tf.float32)
    sums, positions = _terms(ref, img)
    errors = cell_squared_errors(ref, img)
    geometry = Geometry(width, height, patch_size=32, tile_size=1024)
    table = QualityTable.from_cells(sums.numpy(), positions.numpy()[0], errors.numpy(), geometry)
    one = np.ones(geometry.patches, int)
    assert table.msssim(one) == pytest.approx(msssim(reference, image), abs=2e-5)
    assert table.psnr(one) == pytest.approx(psnr(reference, image), abs=1e-4)
    in_graph_msssim, in_graph_psnr = whole_image_quality(sums, positions, errors)  # the early exit's view
    assert float(in_graph_msssim[0]) == pytest.approx(table.msssim(one), abs=2e-5)
    assert float(in_graph_psnr[0]) == pytest.approx(table.psnr(one), abs=1e-3)


def test_the_training_loss_msssim_is_the_gateways_where_every_scale_fits(kodak_image) -> None:
    from model_export.quality_terms import msssim_per_image

    rgb = kodak_image[:192, :256]
    noisy = np.clip(rgb + np.random.default_rng(1).normal(0, 10, rgb.shape), 0, 255).astype(np.uint8)
    got = float(msssim_per_image(tf.constant(rgb[None], tf.float32), tf.constant(noisy[None], tf.float32))[0])
    # float32 variances (E[x²] − E[x]² of 0-255 values) against the gateway's float64: 1e-5 apart on
    # some CPUs' kernels, as the cell terms above (2e-5); a different formula moves it by 1e-3 or more
    assert got == pytest.approx(msssim(rgb, noisy), abs=2e-5)


def test_the_training_loss_msssim_on_a_small_crop_rewards_the_right_brightness(kodak_image) -> None:
    """A 96-pixel crop holds four scales; the last carries the luminance term, so a brightness shift
    costs, and the value is 1 for the image itself."""
    from model_export.quality_terms import msssim_per_image

    crop = tf.constant(kodak_image[None, :96, :96], tf.float32)
    assert float(msssim_per_image(crop, crop)[0]) == pytest.approx(1.0, abs=1e-6)
    brighter = tf.clip_by_value(crop + 40.0, 0.0, 255.0)
    assert float(msssim_per_image(crop, brighter)[0]) < 0.99


def test_the_training_loss_msssim_covering_the_border_sees_an_error_in_the_outer_ring(kodak_image) -> None:
    """Noise in the crop's outer 4 px lies in few of MS-SSIM's own windows; centring a window on every
    pixel (the border mirrored) makes it cost more, and the image itself still scores 1."""
    from model_export.quality_terms import msssim_per_image

    crop = tf.constant(kodak_image[None, :128, :128], tf.float32)
    assert float(msssim_per_image(crop, crop, cover_border=True)[0]) == pytest.approx(1.0, abs=1e-6)
    ring = np.ones((1, 128, 128, 1), np.float32)
    ring[:, 4:-4, 4:-4] = 0.0
    noise = np.random.default_rng(0).normal(0.0, 30.0, (1, 128, 128, 3)).astype(np.float32)
    noisy = tf.clip_by_value(crop + noise * ring, 0.0, 255.0)
    inside = float(msssim_per_image(crop, noisy)[0])
    covering = float(msssim_per_image(crop, noisy, cover_border=True)[0])
    assert covering < inside - 0.01
