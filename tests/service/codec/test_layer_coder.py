"""The refinement layer's coder: its search for the coarsest quantiser step meeting an aim."""

from types import SimpleNamespace

import numpy as np
import pytest

from service.codec import refinement
from service.codec.encoding import grey_image
from service.codec.layer_coder import LayerCoder, layer_alone
from service.codec.quality import msssim, psnr
from service.codec.rate_control import Target


@pytest.mark.parametrize(("kind", "value"), [("msssim", 0.95), ("msssim", 0.99), ("psnr", 35.0)])
def test_the_refinement_step_search_finds_nearly_the_coarsest_step_meeting_the_target(
    kodak_image, kind: str, value: float
) -> None:
    """Against a scan of steps 2 % apart: the search (a handful of measurements) meets the target at a
    step no more than 10 % finer than the coarsest the scan finds meeting it."""
    rgb = np.ascontiguousarray(kodak_image[100:228, 200:392])
    target = Target(kind, value)
    measure = msssim if kind == "msssim" else psnr
    coder = LayerCoder(kind, value, measure)
    transform = refinement.ResidualTransform.of(rgb, np.full_like(rgb, 128))
    trial, achieved = coder.search(SimpleNamespace(rgb=rgb), transform)
    assert target.met_by(achieved) and achieved == measure(rgb, trial.image)
    steps = refinement.MIN_STEP * 1.02 ** np.arange(int(np.log(512) / np.log(1.02)))  # to step 256
    coarsest = max(s for s in steps if target.met_by(measure(rgb, transform.trial(s).image)))
    assert trial.step >= 0.9 * coarsest


def test_an_msssim_search_starts_where_its_aim_usually_lands(kodak_image) -> None:
    """The first try follows the aim (coarser for a lower one), and the search ends within a few tries."""
    rgb = np.ascontiguousarray(kodak_image[100:228, 200:392])
    transform = refinement.ResidualTransform.of(rgb, np.full_like(rgb, 128))
    first, counts = {}, {}
    for aim in (0.90, 0.98):
        tried: list[float] = []

        def measure(reference: np.ndarray, image: np.ndarray, tried: list[float] = tried) -> float:
            tried.append(float(np.abs(image.astype(float) - reference).mean()))  # stands for the step
            return msssim(reference, image)

        LayerCoder("msssim", aim, measure).search(SimpleNamespace(rgb=rgb), transform)
        first[aim], counts[aim] = tried[0], len(tried)
    assert first[0.90] > first[0.98]  # the first image of the lower aim is the coarser one
    assert max(counts.values()) <= 7


@pytest.mark.parametrize(("kind", "value"), [("msssim", 0.95), ("psnr", 33.0)])
def test_the_layer_alone_meets_its_aim_and_decodes_to_what_it_measured(
    kodak_image, kind: str, value: float
) -> None:
    rgb = np.ascontiguousarray(kodak_image[:96, :160])
    measure = msssim if kind == "msssim" else psnr
    trial, achieved = layer_alone(rgb, kind, value, measure)
    assert Target(kind, value).met_by(achieved) and (trial.levels is not None) == (kind == "msssim")
    decoded = refinement.decode(grey_image(*rgb.shape[:2]), refinement.encode(trial), refinement.FORMAT)
    np.testing.assert_array_equal(decoded, trial.image)
