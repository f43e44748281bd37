import numpy as np

from model_export.fit_layer_search import fit_first_step
from service.codec.layer_coder import layer_alone
from service.codec.quality import msssim


def test_the_fitted_line_puts_higher_aims_at_finer_steps_through_the_steps_found(kodak_image) -> None:
    images = [
        np.ascontiguousarray(kodak_image[:128, :192]),
        np.ascontiguousarray(kodak_image[200:328, 300:492]),
    ]
    aims = (0.90, 0.95, 0.98)
    intercept, slope, residual = fit_first_step(images, aims)
    assert slope < 0 and residual < 1.0
    mean_log_step = np.mean(
        [
            np.log(layer_alone(images[0], "msssim", 0.95, msssim)[0].step),
            np.log(layer_alone(images[1], "msssim", 0.95, msssim)[0].step),
        ]
    )
    assert abs(intercept + slope * -10 * np.log10(0.05) - mean_log_step) < 1.0
