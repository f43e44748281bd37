"""What compress aims at, as two strategies: a quality to reach in the fewest bytes (MS-SSIM or PSNR), or
a size to fill with the best quality (bpp).

``ImageCodec.compress`` runs the same four steps for both (service/codec/pipeline.py):

    first pass ─▶ candidates ─▶ choice ─▶ report
      uniform      the best uniform count, then per-patch allocations from rate control, each
      encode       decoded exactly as the receiver will (a quality goal checks an allocation on a
                   composite image first and decodes at most two)

and asks its goal at each step: how many iterations the first pass runs, which uniform count and
which allocations are candidates, and which candidate wins. A :class:`CompressRun` holds one call's
state (image, geometry, the first pass, timings) and the operations the goals share.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from service.codec import refinement
from service.codec.entropy import truncate
from service.codec.patches import Geometry
from service.codec.quality import msssim, psnr
from service.codec.rate_control import Target, allocate

if TYPE_CHECKING:
    from service.codec.pipeline import EarlyExit, Encoding, ImageCodec

__all__ = [
    "FIRST_PASS_SHARE",
    "Candidate",
    "CompressRun",
    "Progress",
    "QualityGoal",
    "SizeGoal",
    "goal_for",
    "next_aim",
]

#: Told the stage compress entered and the share of the work done (0-1), from the worker thread.
Progress = Callable[[str, float], None]

#: Quality goals try a per-patch allocation only when it is estimated at least this much smaller.
_MIN_SAVING = 0.03
#: A size goal is hit when the bitstream is within this fraction of it (and not above).
_SIZE_TOLERANCE = 0.95
#: Allocations tried. A quality goal checks each on a composite image first (a measurement) and
#: decodes at most ``_QUALITY_DECODES`` of them; a size miss costs a decode and a coding, and a mixed
#: allocation's coded size is hard to predict.
_QUALITY_TRIES, _SIZE_TRIES = 8, 5
_QUALITY_DECODES = 2
#: How far past the interpolated aim (``next_aim``) the aim moves after a quality goal was missed.
_AIM_STEP = {"msssim": 1e-4, "psnr": 0.01}
#: Quality estimates must clear the target by this much (float rounding of the backend's sums).
_ESTIMATE_MARGIN = {"msssim": 2e-5, "psnr": 1e-3}
#: Allocations that mix counts decode a little below their estimate; the first aim allows for it.
_FIRST_AIM_BIAS = {"msssim": 3e-4, "psnr": 0.02}
#: Share of compress's work the first pass (the uniform encode) stands for in progress reports.
FIRST_PASS_SHARE = 0.7
#: Quality targets from which smooth patches get iterations until their colour settles, also when the
#: fewest uniform iterations win: below, the whole picture is coarse, our steps are already fewer than
#: WebP's at the same bytes, and the rule cost 9 % more bytes at MS-SSIM 0.90 on Kodak (decision 25).
_SETTLE_COLOUR_FROM = {"msssim": 0.93, "psnr": 28.0}
#: Iterations added per extra encode when the decoded image still misses a quality the model can reach.
_EXTENSION = 2
#: The refinement layer's search for the coarsest quantiser step meeting a target: at most this many
#: measurements, stopping once the step is known within 1 %; the first try and its guess of how much
#: quality (dB; MS-SSIM in dB) a step e times coarser loses, before two tries measure it.
_REFINE_TRIES = 9
_REFINE_PRECISION = float(np.log(1.01))
_REFINE_FIRST_STEP = 8.0
_REFINE_DB_PER_E = 7.0
#: One just-noticeable colour difference (ΔE*ab): a visible jump between neighbouring smooth patches.
_JND = 2.3
#: The coarsest quantiser step searched: a layer over no iteration still met MS-SSIM 0.95 at step 150
#: on some photos (format 7 keeps their smooth areas' colours there).
_REFINE_MAX_STEP = 256.0


@dataclass
class Candidate:
    """One way to code the image: per-patch counts and what the receiver decodes from them."""

    counts: np.ndarray  # per patch
    image: np.ndarray  # what the receiver decodes, uint8 [H,W,3] (or its composite: see ``decoded``)
    data: bytes | None  # the bitstream; quality goals code only the chosen candidate
    value: float  # the goal's quantity: bpp, or the quality measured (exact) or estimated
    exact: bool
    raw_bits: float  # bits before entropy coding: how quality goals rank candidates
    #: False while ``image`` is the first pass's composite, a backend decode put off until chosen
    decoded: bool = True
    #: the refinement layer's payload on top of the network's image (empty: none)
    refinement: bytes = b""
    #: visible jumps between smooth patches in ``image``, once counted (``QualityGoal._jumps``)
    jumps: int | None = None

    @property
    def coder(self) -> str:
        """Who codes this candidate: "network", "layer" (alone) or "network+layer"."""
        if not self.refinement:
            return "network"
        return "network+layer" if int(self.counts.max(initial=0)) else "layer"


@dataclass
class CompressRun:
    """One compress call: the image, its geometry and model version, the first pass, and timings."""

    codec: ImageCodec
    rgb: np.ndarray
    geometry: Geometry
    version: int
    cost: np.ndarray  # raw bits one iteration of each patch costs, [patches_y, patches_x]
    timings: dict[str, float] = field(default_factory=dict)
    uniform: Encoding | None = None
    progress: Progress | None = None
    _floor: tuple[Encoding, np.ndarray] | None = None
    #: whether smooth patches get iterations until their colour settles (high quality targets only)
    settle_colour: bool = False
    #: bytes of each coder's smallest bitstream meeting the target that was compared ("network", "layer")
    coder_bytes: dict[str, int] = field(default_factory=dict)

    def report_progress(self, stage: str, share: float) -> None:
        if self.progress is not None:
            self.progress(stage, share)

    @property
    def pixels(self) -> int:
        return self.geometry.width * self.geometry.height

    def timed(self, key: str, function: Callable[..., Any], *args: Any) -> Any:
        start = time.perf_counter()
        try:
            return function(*args)
        finally:
            self.timings[key] = self.timings.get(key, 0.0) + time.perf_counter() - start

    @functools.cached_property
    def smooth(self) -> np.ndarray:
        """Which patches are smooth (bool [patches_y, patches_x]): their colour offsets show as blocks."""
        return self.geometry.smooth_patches(self.rgb)

    @functools.cached_property
    def _original_colours(self) -> np.ndarray:
        return self.geometry.patch_colours(self.rgb)

    def colour_offsets(self, iterations: int) -> np.ndarray:
        """ΔE*ab between each patch's mean colour after ``iterations`` of the first pass and the
        original's."""
        assert self.uniform is not None
        colours = self.geometry.patch_colours(self.uniform.reconstruction(iterations))
        return np.linalg.norm(colours - self._original_colours, axis=-1)

    def minimum_counts(self) -> np.ndarray:
        """The fewest iterations rate control may give each patch: a smooth patch gets at least
        ``smooth_patch_iterations`` and then as many as it takes its mean colour to come within
        ``smooth_patch_delta_e`` of the original's (of those the first pass ran): two neighbours within
        it differ by about one just-noticeable difference (ΔE 2.3) at most (decision 25)."""
        assert self.uniform is not None
        if self._floor is not None and self._floor[0] is self.uniform:
            return self._floor[1]
        floor = np.where(self.smooth, self.codec.smooth_patch_iterations, 1)
        tolerance = self.codec.smooth_patch_delta_e if self.settle_colour else 0.0
        if tolerance > 0 and self.smooth.any():
            settled = np.full(self.geometry.patches, self.iterations_run)
            for n in range(self.iterations_run, int(floor.max()) - 1, -1):
                settled[self.colour_offsets(n) <= tolerance] = n
            floor = np.where(self.smooth, np.maximum(floor, settled), floor)
        self._floor = (self.uniform, floor)
        return floor

    def visible_jumps(self, image: np.ndarray) -> int:
        """Neighbouring smooth patches whose mean colours in ``image`` are off the original's by amounts
        that differ by more than one just-noticeable difference: the blocks a viewer sees in gradients."""
        offsets = self.geometry.patch_colours(image) - self._original_colours
        jumps = 0
        for a, b in (np.s_[:, 1:], np.s_[:, :-1]), (np.s_[1:, :], np.s_[:-1, :]):
            both = self.smooth[a] & self.smooth[b]
            jumps += int((np.linalg.norm(offsets[a] - offsets[b], axis=-1)[both] > _JND).sum())
        return jumps

    def grey(self) -> np.ndarray:
        """What the receiver decodes from no network iteration."""
        from service.codec.pipeline import grey_image

        return grey_image(self.geometry.height, self.geometry.width)

    def uniform_counts(self, n: int) -> np.ndarray:
        """``n`` iterations for every patch (fewer where the first pass's tile stopped sooner)."""
        counts = np.full(self.geometry.patches, n)
        return counts if self.uniform is None else self.uniform.within_limits(counts)

    def allocate(
        self, kind: str, acceptable: Callable[[np.ndarray], bool], fewest_bits: bool, start: np.ndarray
    ) -> np.ndarray | None:
        """Rate control on the first pass's quality table, with the smooth-patch floor, within the
        iterations each tile ran."""
        assert self.uniform is not None
        counts = self.timed(
            "rate_control_seconds",
            functools.partial(allocate, minimum=self.minimum_counts()),
            self.uniform.quality,
            kind,
            self.cost,
            acceptable,
            fewest_bits,
            start,
        )
        return None if counts is None else self.uniform.within_limits(counts)

    def raw_bits(self, counts: np.ndarray) -> float:
        return float((counts * self.cost).sum())

    def first_pass(self, iterations: int, early_exit: EarlyExit | None) -> Encoding:
        """Encode every patch with ``iterations`` (fewer if ``early_exit`` stops the backend sooner)."""
        self.report_progress("encoding", 0.0)

        def calls_done(share: float) -> None:
            self.report_progress("encoding", FIRST_PASS_SHARE * share)

        encode = functools.partial(self.codec.encode, progress=calls_done)
        self.uniform = self.timed("encode_seconds", encode, self.rgb, iterations, self.version, early_exit)
        return self.uniform

    @property
    def iterations_run(self) -> int:
        assert self.uniform is not None
        return self.uniform.bits.shape[0]

    def coded(self, counts: np.ndarray, refinement_payload: bytes = b"") -> bytes:
        """The bitstream of the first pass's bits truncated to per-patch ``counts`` (and a refinement)."""
        return self.timed(
            "entropy_coding_seconds",
            functools.partial(self.codec.bitstream, refinement=refinement_payload),
            self.uniform,
            counts,
        )

    def decoded(self, counts: np.ndarray) -> np.ndarray:
        """What the receiver decodes from the first pass's bits truncated to ``counts`` (a backend call)."""
        assert self.uniform is not None
        cells = self.geometry.cell_iterations(counts)
        bits = truncate(self.uniform.bits[: int(counts.max())], cells)
        return self.timed("decode_seconds", self.codec.decode_bits, self.geometry, self.version, bits, cells)

    def composite(self, counts: np.ndarray) -> np.ndarray:
        """The first pass's image with each patch at its own count: an allocation judged without a decode."""
        assert self.uniform is not None
        return self.uniform.composite(self.geometry.cell_iterations(counts))

    def uniform_candidate(self, n: int, value: float, data: bytes | None = None) -> Candidate:
        """Every patch at ``n`` iterations: a prefix of the first pass, so its image is exact."""
        assert self.uniform is not None
        counts = self.uniform_counts(n)
        return Candidate(counts, self.uniform.reconstruction(n), data, value, False, self.raw_bits(counts))


def _finite_db(value: float) -> float:
    """A PSNR in dB, infinite (an exact image) capped at 100 dB."""
    return min(float(value), 100.0)


def next_aim(short: tuple[float, float], meets: tuple[float, float], wanted: float, step: float) -> float:
    """The estimate to aim at next so that the measured quality reaches ``wanted``: interpolated
    between an (aim, measured) pair that fell short and one that met it, plus ``step`` so that the
    aim always moves.

    Mixed allocations can measure far below their estimate (on kodim20, 0.932 against 0.950: flat
    cells at one iteration beside busy ones at three), and the gap shrinks as the aim nears the
    uniform count's (exact) estimate; raising the aim by the whole shortfall would overshoot every
    allocation the first pass offers and leave only the uniform count.
    """
    (low_aim, low_value), (high_aim, high_value) = short, meets
    if high_value <= low_value:
        return high_aim
    fraction = min(1.0, (wanted - low_value) / (high_value - low_value))
    return low_aim + fraction * (high_aim - low_aim) + step


class QualityGoal:
    """Reach an MS-SSIM or PSNR in the fewest bits; the quality reported is measured on the decoded image."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.kind = target.kind
        self.measure = psnr if self.kind == "psnr" else msssim
        self.aim = target.value + _ESTIMATE_MARGIN[self.kind]
        #: the refinement layer alone, when the first pass tried it
        self.layer: Candidate | None = None

    def first_pass(self, run: CompressRun) -> None:
        """Every iteration the model offers, each backend call stopping where its tiles meet the aim (a
        big image stops where a small one would, tile by tile). Where the refinement layer codes the
        whole image (no network iteration under it), it is coded while the backend runs the network:
        both coders compete at every target, and the smaller bitstream meeting it wins (decision 32)."""
        layer_wanted = run.codec.refinement_base_iterations == 0
        with ThreadPoolExecutor(max_workers=1) as pool:
            # The backend (another process, or a GPU) runs the network while this process codes the layer.
            pending = pool.submit(self._layer, run, 0) if layer_wanted else None
            self._network_pass(run)
            if pending is not None:
                self.layer = pending.result()

    def _network_pass(self, run: CompressRun) -> None:
        """The first pass through the backend."""
        from service.codec.pipeline import EarlyExit

        codec = run.codec
        run.settle_colour = (
            codec.smooth_patch_delta_e > 0 and self.target.value >= _SETTLE_COLOUR_FROM[self.kind]
        )
        # Tiles with smooth patches run one iteration past the aim: where their colour settles
        # (minimum_counts); a big image's other tiles do not pay for it.
        one_more = (
            run.geometry.cell_iterations(run.smooth.astype(np.int32)) > 0 if run.settle_colour else None
        )
        run.first_pass(codec.max_iterations, EarlyExit(self.kind, self.aim, codec.extra_iterations, one_more))
        floor = codec.smooth_patch_iterations if run.settle_colour and run.smooth.any() else 1
        if run.iterations_run < min(codec.max_iterations, floor):  # smooth patches need more: that far
            run.first_pass(min(codec.max_iterations, floor), None)

    def candidates(self, run: CompressRun) -> list[Candidate]:
        """The fewest uniform iterations estimated to meet the aim (or all), then rate control's
        allocations: each settled on a composite image before it is decoded and measured, unless the
        layer beats it anyway."""
        table = run.uniform.quality
        curve = [table.estimate(self.kind, run.uniform_counts(n)) for n in range(1, run.iterations_run + 1)]
        n = next((n for n, q in enumerate(curve, 1) if q >= self.aim), run.iterations_run)
        uniform = run.uniform_candidate(n, curve[n - 1])
        floored = run.uniform.within_limits(np.maximum(uniform.counts, run.minimum_counts()))
        if run.settle_colour and not np.array_equal(floored, uniform.counts):  # their floor here too
            # Judged on its composite (a little below its decode) and decoded only if chosen: an
            # allocation that meets the target has the same floor and fewer bits.
            image = run.composite(floored)
            value = run.timed("metrics_seconds", self.measure, run.rgb, image)
            uniform = Candidate(floored, image, None, value, False, run.raw_bits(floored), decoded=False)
        found = [uniform]
        aim = self.aim + _FIRST_AIM_BIAS[self.kind]  # cell sums estimate mixed counts a little high
        uniform_point = (uniform.value, uniform.value)  # a miss moves the aim towards it (measured)
        decodes = 0
        for _ in range(_QUALITY_TRIES):
            acceptable = lambda c, aim=aim: table.estimate(self.kind, c) >= aim  # noqa: E731
            counts = run.allocate(self.kind, acceptable, True, uniform.counts)
            if counts is None or np.array_equal(counts, uniform.counts):
                break
            if 1 - run.raw_bits(counts) / uniform.raw_bits < _MIN_SAVING:
                break  # not worth a decode
            composite = run.composite(counts)
            predicted = run.timed("rate_control_seconds", self.measure, run.rgb, composite)
            if not self.target.met_by(predicted):
                aim = next_aim((aim, predicted), uniform_point, self.target.value, _AIM_STEP[self.kind])
                continue
            allocation = Candidate(
                counts, composite, None, predicted, False, run.raw_bits(counts), decoded=False
            )
            if self._layer_beats(run, allocation):
                # the fewest bits found may meet the target and still lose: no decode (choose keeps the layer)
                found.append(allocation)
                break
            image = run.decoded(counts)
            decodes += 1
            value = run.timed("metrics_seconds", self.measure, run.rgb, image)
            found.append(Candidate(counts, image, None, value, True, run.raw_bits(counts)))
            if self.target.met_by(value) or decodes == _QUALITY_DECODES:
                break
            aim = next_aim((aim, value), uniform_point, self.target.value, _AIM_STEP[self.kind])
        return found

    def choose(self, run: CompressRun, candidates: list[Candidate]) -> tuple[Candidate, float]:
        """The fewest bits among those meeting the target, its quality measured on the decoded image.

        An estimate can be off at tile and padding edges (the backend's early exit judges the padded
        image): if the image misses, more uniform iterations are tried, encoding further while the model
        offers more, so a target that more iterations reach is never answered short.
        """
        chosen = min(candidates, key=lambda c: (not self.target.met_by(c.value), c.raw_bits))
        if not chosen.decoded:
            if self._layer_beats(run, chosen):  # no decode of what loses to the layer anyway
                assert self.layer is not None
                return self.layer, self.layer.value
            chosen = dataclasses.replace(chosen, image=run.decoded(chosen.counts), decoded=True, jumps=None)
        achieved = (
            chosen.value
            if chosen.exact
            else run.timed("metrics_seconds", self.measure, run.rgb, chosen.image)
        )
        n = int(chosen.counts.max())
        while not self.target.met_by(achieved):
            n += 1
            if n > run.iterations_run:
                if run.iterations_run >= run.codec.max_iterations:
                    break
                run.first_pass(min(run.codec.max_iterations, run.iterations_run + _EXTENSION), None)
            extra = run.uniform_candidate(n, 0.0)
            value = run.timed("metrics_seconds", self.measure, run.rgb, extra.image)
            if value > achieved:
                chosen, achieved = extra, value
        return chosen, achieved

    def refine(self, run: CompressRun, chosen: Candidate, achieved: float) -> tuple[Candidate, float]:
        """The refinement layer over the codec's ``refinement_base_iterations`` (0 by default: the layer
        codes the whole image, and was coded in the first pass). Kept if it meets the target in fewer
        bytes without more visible jumps between smooth patches (from ``_SETTLE_COLOUR_FROM``), or,
        where the network misses, if it comes closer."""
        base = run.codec.refinement_base_iterations
        met = self.target.met_by(achieved)
        layer = self.layer
        if chosen is layer or base is None:
            return chosen, achieved
        if layer is None:
            layer = self._layer(run, min(base, run.iterations_run))
        if not self.target.met_by(layer.value) if met else layer.value <= achieved:
            return chosen, achieved
        if met and not self._layer_wins(run, layer, chosen):
            return chosen, achieved
        layer.data = layer.data or run.coded(layer.counts, layer.refinement)
        return layer, layer.value

    def _layer_beats(self, run: CompressRun, network: Candidate) -> bool:
        """Whether the layer the first pass coded meets the target and wins over ``network``."""
        return (
            self.layer is not None
            and self.target.met_by(self.layer.value)
            and self._layer_wins(run, self.layer, network)
        )

    def _layer_wins(self, run: CompressRun, layer: Candidate, network: Candidate) -> bool:
        """Whether ``layer`` is kept over ``network``, both meeting the target: in fewer bytes, and (from
        ``_SETTLE_COLOUR_FROM``) without more visible jumps between smooth patches, the steps in
        gradients decision 25 took out; ``network.image`` may be its composite, standing in for a
        decode not made yet."""
        layer.data = layer.data or run.coded(layer.counts, layer.refinement)
        network.data = network.data or run.coded(network.counts)
        for candidate in (layer, network):
            sizes = run.coder_bytes
            sizes[candidate.coder] = min(len(candidate.data), sizes.get(candidate.coder, len(candidate.data)))
        if len(network.data) <= len(layer.data):
            return False
        if self.target.value >= _SETTLE_COLOUR_FROM[self.kind] and run.codec.smooth_patch_delta_e > 0:
            return self._jumps(run, layer) <= self._jumps(run, network)
        return True

    @staticmethod
    def _jumps(run: CompressRun, candidate: Candidate) -> int:
        """``candidate``'s visible jumps, counted once (the layer is compared with up to three candidates)."""
        if candidate.jumps is None:
            candidate.jumps = run.visible_jumps(candidate.image)
        return candidate.jumps

    def _layer(self, run: CompressRun, base_count: int) -> Candidate:
        """The refinement layer over ``base_count`` network iterations (none: over mid-grey), at the
        coarsest quantiser step found meeting the aim; its bitstream is coded when compared."""
        if base_count == 0:
            base, counts = run.grey(), np.zeros(run.geometry.patches, np.int64)
        else:
            base, counts = run.uniform.reconstruction(base_count), run.uniform_counts(base_count)
        # finer block means and adaptive steps: fewer bytes and visible blocks for MS-SSIM, more for PSNR
        transform = run.timed(
            "refinement_seconds", refinement.ResidualTransform.of, run.rgb, base, self.kind == "msssim"
        )
        trial, value = run.timed("refinement_seconds", self._refinement_trial, run, transform)
        payload = run.timed("refinement_seconds", refinement.encode, trial)
        return Candidate(counts, trial.image, None, value, True, 8.0 * len(payload), refinement=payload)

    def _refinement_trial(
        self, run: CompressRun, transform: refinement.ResidualTransform
    ) -> tuple[refinement.Trial, float]:
        """(trial, quality): the coarsest step found meeting the aim, else the finest step. A secant
        search on the log of the step against the quality in dB, which is close to a straight line."""
        # both in dB and finite: an exact image's PSNR is infinite and would stall the secant in NaNs
        in_db = (lambda q: -10 * np.log10(max(1 - q, 1e-10))) if self.kind == "msssim" else _finite_db
        wanted = in_db(self.aim)
        lowest, highest = np.log(refinement.MIN_STEP), np.log(_REFINE_MAX_STEP)
        tried: dict[float, float] = {}  # quality by log step
        best: tuple[refinement.Trial, float] | None = None  # the coarsest meeting the aim (one held)
        x = float(np.log(_REFINE_FIRST_STEP))
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
            slope = -_REFINE_DB_PER_E
            if len(tried) > 1:  # the two tries nearest the aim
                ordered = sorted(tried.items())
                (x0, v0), (x1, v1) = ordered[-2:] if meets else ordered[:2]
                slope = min((in_db(v1) - in_db(v0)) / (x1 - x0), -_REFINE_DB_PER_E / 2)
            move = float(np.clip((wanted - in_db(tried[near])) / slope, -2.0, 2.0))
            move = max(move, _REFINE_PRECISION) if meets else min(move, -_REFINE_PRECISION)
            x = float(np.clip(near + move, lowest, highest))
            if x == near:
                break
        if best is None:
            trial = transform.trial(refinement.MIN_STEP)
            best = (trial, self.measure(run.rgb, trial.image))
        return best


class SizeGoal:
    """Fill a size (bits per pixel) with the best quality: the most bytes that still fit."""

    kind = "bpp"

    def __init__(self, target: Target) -> None:
        self.target = target
        self.quality_kind = "msssim"  # what a size goal maximises

    def first_pass(self, run: CompressRun) -> None:
        """Enough iterations for the size even if entropy coding saved half the bits."""
        needed = int(np.ceil(2 * self.target.value * run.pixels / run.cost.sum()))
        run.first_pass(int(np.clip(needed, 1, run.codec.max_iterations)), None)

    def candidates(self, run: CompressRun) -> list[Candidate]:
        """The most uniform iterations whose real size fits (bisection), then rate control's
        allocations, each decoded and coded, the aim scaled by how far its size was off."""
        sizes: dict[int, bytes] = {}  # uniform counts, each coded once

        def uniform_bytes(n: int) -> bytes:
            if n not in sizes:
                sizes[n] = run.coded(run.uniform_counts(n))
            return sizes[n]

        low, high = 1, run.iterations_run
        while low < high:
            middle = (low + high + 1) // 2
            if 8 * len(uniform_bytes(middle)) / run.pixels <= self.target.value:
                low = middle
            else:
                high = middle - 1
        data = uniform_bytes(low)
        uniform = run.uniform_candidate(low, 8 * len(data) / run.pixels, data)
        full = run.uniform_counts(run.iterations_run)
        coding_ratio = 8 * len(uniform_bytes(run.iterations_run)) / run.raw_bits(full)  # coded / raw

        found = [uniform]
        aim = self.target.value
        for _ in range(_SIZE_TRIES):
            acceptable = lambda c, aim=aim: run.raw_bits(c) * coding_ratio / run.pixels <= aim  # noqa: E731
            counts = run.allocate(self.quality_kind, acceptable, False, uniform.counts)
            if counts is None or np.array_equal(counts, uniform.counts):
                break
            image = run.decoded(counts)
            data = run.coded(counts)
            value = 8 * len(data) / run.pixels
            found.append(Candidate(counts, image, data, value, True, run.raw_bits(counts)))
            if self.target.met_by(value) and value >= _SIZE_TOLERANCE * self.target.value:
                break
            if np.array_equal(counts, run.uniform.limits):
                break  # every patch already has every iteration: more aim cannot help
            aim *= self.target.value / value
        return found

    def choose(self, run: CompressRun, candidates: list[Candidate]) -> tuple[Candidate, float]:
        """The largest bitstream that fits (else the smallest); the value is its bpp."""
        chosen = min(candidates, key=lambda c: (not self.target.met_by(c.value), -len(c.data or b"")))
        return chosen, chosen.value

    def refine(self, run: CompressRun, chosen: Candidate, achieved: float) -> tuple[Candidate, float]:
        """Size targets are filled by the network's iterations alone."""
        return chosen, achieved


def goal_for(target: Target) -> QualityGoal | SizeGoal:
    """The strategy for ``target``'s kind."""
    return SizeGoal(target) if target.kind == "bpp" else QualityGoal(target)
