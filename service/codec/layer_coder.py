"""The refinement layer as a coder beside the network: an 8×8 DCT residual at the coarsest quantiser step
that meets a quality aim (service/codec/refinement.py codes it; docs/decisions.md 28-31)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from types import SimpleNamespace

import numpy as np

from service.codec import refinement
from service.codec.encoding import grey_image
from service.codec.postfilters import Postfilters
from service.codec.restoration import RestoredTransform
from service.codec.run import Candidate, CompressRun

__all__ = ["LayerCoder", "layer_alone"]

#: The refinement layer's search for the coarsest quantiser step meeting a target: at most this many
#: measurements, stopping once the step is known within 1 %; the first try and its guess of how much
#: quality (dB; MS-SSIM in dB) a step e times coarser loses, before two tries measure it.
_REFINE_TRIES = 9
_REFINE_PRECISION = float(np.log(1.01))
_REFINE_FIRST_STEP = 8.0
_REFINE_DB_PER_E = 7.0
#: For MS-SSIM aims the first try follows the aim: ln(step) = a + b·dB, fitted on 16 training photos
#: (``python -m model_export.fit_layer_search``; residual 0.41 in ln step), with 1/|b| = 3.6 dB per e
#: as the slope guess (docs/decisions.md 56). Only where the search starts: it still measures its way
#: to the same step.
_MSSSIM_FIRST_LOG_STEP = (7.63, -0.28)
_MSSSIM_DB_PER_E = 3.6
#: For SSIMULACRA 2 aims (the score itself is the search's scale): ln(step) = a + b·score, read off the
#: layer alone on 12 training photos at steps 3-96 (score 30 near step 33, 70 near step 10), and about
#: 30 points per e of step there.
_SSIMULACRA2_FIRST_LOG_STEP = (4.4, -0.03)
_SSIMULACRA2_POINTS_PER_E = 30.0
#: The coarsest quantiser step searched: a layer over no iteration still met MS-SSIM 0.95 at step 150
#: on some photos (format 7 keeps their smooth areas' colours there).
_REFINE_MAX_STEP = 256.0


def _finite_db(value: float) -> float:
    """A PSNR in dB, infinite (an exact image) capped at 100 dB."""
    return min(float(value), 100.0)


#: Whether the layer alone is chroma-filtered at the receiver, by the aim's kind (decision 43 kept the filter
#: for MS-SSIM). For SSIMULACRA 2 it is not: unfiltered, the layer alone on 6 training photos took 3.6 % fewer
#: bytes at score 70 and 24 % fewer at 90, where filtered it could not reach 90 on one of them (decision 61).
FILTERED_ALONE = {"msssim": True, "psnr": True, "ssimulacra2": False}
#: Whether the layer alone is restored by the receiver's learned filter (where the backend serves it), by
#: the aim's kind: the filter is trained on the layer's SSIMULACRA 2 layout, for that score (decision 62).
RESTORED_ALONE = {"msssim": False, "psnr": False, "ssimulacra2": True}


def _search_scale(kind: str) -> Callable[[float], float]:
    """The scale the step search interpolates a quality on: MS-SSIM in dB, PSNR capped, SSIMULACRA 2
    as it is."""
    if kind == "msssim":
        return lambda q: -10 * np.log10(max(1 - q, 1e-10))
    return _finite_db if kind == "psnr" else float


def _first_try(kind: str, wanted: float) -> tuple[float, float]:
    """The search's first log step for an aim of ``wanted`` (on its scale) and its guess of the quality
    a step e times coarser loses."""
    if kind == "msssim":
        a, b = _MSSSIM_FIRST_LOG_STEP
        return a + b * wanted, _MSSSIM_DB_PER_E
    if kind == "ssimulacra2":
        a, b = _SSIMULACRA2_FIRST_LOG_STEP
        return a + b * wanted, _SSIMULACRA2_POINTS_PER_E
    return float(np.log(_REFINE_FIRST_STEP)), _REFINE_DB_PER_E


class LayerCoder:
    """Codes the refinement layer for one quality aim: ``kind`` ("ssimulacra2", "msssim" or "psnr"), the
    value to reach and the metric that measures it."""

    def __init__(self, kind: str, aim: float, measure: Callable[[np.ndarray, np.ndarray], float]) -> None:
        self.kind, self.aim, self.measure = kind, aim, measure

    def code(self, run: CompressRun, base_count: int) -> Candidate:
        """The refinement layer over ``base_count`` network iterations (none: over mid-grey), at the
        coarsest quantiser step found meeting the aim; its bitstream is coded when compared."""
        if base_count == 0:
            base, counts = run.grey(), np.zeros(run.geometry.patches, np.int64)
        else:
            base, counts = run.uniform.reconstruction(base_count), run.uniform_counts(base_count)
        # the layout by the aim's kind (refinement.MODES): what saves bytes for one measure costs another
        # over no iteration as the aim's kind prefers (format 11 or 9); over iterations, as the network image
        network_filtered = run.postfilters == Postfilters.DEBLOCK_AND_CHROMA
        filtered = FILTERED_ALONE[self.kind] if base_count == 0 else network_filtered
        transform = run.timed(
            "refinement_seconds",
            refinement.ResidualTransform.of,
            run.rgb,
            base,
            self.kind,
            filtered,
        )
        version = run.codec.restorer.version() if base_count == 0 and RESTORED_ALONE[self.kind] else None
        if version:
            restore = functools.partial(run.codec.restorer.restore, version=version)
            transform = RestoredTransform(transform, restore, version)
        trial, value = run.timed("refinement_seconds", self.search, run, transform)
        del transform  # its coefficients (float32, 4 bytes a sample) are not needed to code the payload
        payload = run.timed("refinement_seconds", refinement.encode, trial)
        bits = 8.0 * len(payload)
        return Candidate(
            counts, trial.image, None, value, True, bits, refinement=payload, layer_filtered=filtered
        )

    def search(
        self, run: CompressRun, transform: refinement.ResidualTransform
    ) -> tuple[refinement.Trial, float]:
        """(trial, quality): the coarsest step found meeting the aim, else the finest step. A secant
        search on the log of the step against the quality in dB, which is close to a straight line."""
        # finite: an exact image's PSNR is infinite and would stall the secant in NaNs
        in_db = _search_scale(self.kind)
        wanted = in_db(self.aim)
        lowest, highest = np.log(refinement.MIN_STEP), np.log(_REFINE_MAX_STEP)
        tried: dict[float, float] = {}  # quality by log step
        best: tuple[refinement.Trial, float] | None = None  # the coarsest meeting the aim (one held)
        first, db_per_e = _first_try(self.kind, wanted)
        x = float(np.clip(first, lowest, highest))
        for _ in range(_REFINE_TRIES):
            trial = transform.trial(float(np.exp(x)))
            x = float(np.log(trial.step))
            if x in tried:
                break
            tried[x] = value = self.measure(run.rgb, trial.image)
            if value >= self.aim and (best is None or trial.step > best[0].step):
                best = (trial, value)
            del trial
            meets = [k for k, v in tried.items() if v >= self.aim]
            misses = [k for k, v in tried.items() if v < self.aim]
            if meets and misses:
                low, high = max(meets), min(misses)
                if high - low < _REFINE_PRECISION:
                    break
                low_db, high_db = in_db(tried[low]), in_db(tried[high])
                share = (low_db - wanted) / (low_db - high_db) if low_db > high_db else 0.5
                x = low + float(np.clip(share, 0.2, 0.8)) * (high - low)
                continue
            # not bracketed yet: step along the measured slope (or the guess) towards the aim
            near = max(meets) if meets else min(misses)
            slope = -db_per_e
            if len(tried) > 1:  # the two tries nearest the aim
                ordered = sorted(tried.items())
                (x0, v0), (x1, v1) = ordered[-2:] if meets else ordered[:2]
                slope = min((in_db(v1) - in_db(v0)) / (x1 - x0), -db_per_e / 2)
            move = float(np.clip((wanted - in_db(tried[near])) / slope, -2.0, 2.0))
            move = max(move, _REFINE_PRECISION) if meets else min(move, -_REFINE_PRECISION)
            x = float(np.clip(near + move, lowest, highest))
            if x == near:
                break
        if best is None:
            trial = transform.trial(refinement.MIN_STEP)
            best = (trial, self.measure(run.rgb, trial.image))
        return best


def layer_alone(
    rgb: np.ndarray, kind: str, aim: float, measure: Callable[[np.ndarray, np.ndarray], float]
) -> tuple[refinement.Trial, float]:
    """The layer over mid-grey for uint8 ``rgb`` [H,W,3] on its own, without a compress run: the trial at
    the coarsest step found meeting ``aim`` and its quality (what ``model_export.fit_layer_counts`` fits
    on and ``benchmarks.layer_alone`` measures)."""
    transform = refinement.ResidualTransform.of(rgb, grey_image(*rgb.shape[:2]), kind, FILTERED_ALONE[kind])
    return LayerCoder(kind, aim, measure).search(SimpleNamespace(rgb=rgb), transform)
