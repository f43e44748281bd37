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
