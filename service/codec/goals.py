"""What compress aims at, as three strategies: a perceptual score to reach in the fewest bytes (SSIMULACRA
2), a quality to reach in the fewest bytes (MS-SSIM or PSNR), or a size to fill with the best quality
(bpp).

``ImageCodec.compress`` runs the same four steps for both (service/codec/pipeline.py):

    first pass ─▶ candidates ─▶ choice ─▶ report
      uniform      the best uniform count, then per-patch allocations from rate control, each
      encode       decoded exactly as the receiver will (a quality goal checks an allocation on a
                   composite image first and decodes at most two)

and asks its goal at each step: how many iterations the first pass runs, which uniform count and
which allocations are candidates, and which candidate wins. A quality goal sets the two coders side
by side, the network (its first pass and rate control's allocations) and the refinement layer
(service/codec/layer_coder.py), and keeps the smaller bitstream meeting the target. A
:class:`~service.codec.run.CompressRun` holds one call's state (service/codec/run.py).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from service.codec.encoding import EarlyExit
from service.codec.layer_coder import LayerCoder
from service.codec.postfilters import Postfilters, filter_chroma
from service.codec.quality import MEASURES, msssim
from service.codec.rate_control import Target
from service.codec.run import Candidate, CompressRun, NetworkCoder

__all__ = [
    "PerceptualGoal",
    "QualityGoal",
    "SizeGoal",
    "allocations_below",
    "goal_for",
    "next_aim",
]

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
_ESTIMATE_MARGIN = {"msssim": 2e-5, "psnr": 1e-3, "ssimulacra2": 0.0}
#: Allocations that mix counts decode a little below their estimate; the first aim allows for it.
_FIRST_AIM_BIAS = {"msssim": 3e-4, "psnr": 0.02}
#: Quality targets from which smooth patches get iterations until their colour settles, also when the
#: fewest uniform iterations win: below, the whole picture is coarse, our steps are already fewer than
#: WebP's at the same bytes, and the rule cost 9 % more bytes at MS-SSIM 0.90 on Kodak (decision 25).
_SETTLE_COLOUR_FROM = {"msssim": 0.93, "psnr": 28.0, "ssimulacra2": np.inf}
#: Iterations added per extra encode when the decoded image still misses a quality the model can reach.
_EXTENSION = 2


def next_aim(
    misses: Sequence[tuple[float, float]], meets: tuple[float, float], wanted: float, step: float
) -> float:
    """The estimate to aim at next so that the measured quality reaches ``wanted``, plus ``step`` so that
    the aim always moves. ``misses`` are the (estimate, measured) pairs of the allocations that fell
    short so far, ``meets`` the uniform count's (which met it, or came nearest). The estimate is the
    allocation's own, not the aim it was made for: whole counts can clear an aim by far, and an aim
    below that estimate brings the same allocation back.

    After one miss, interpolated between it and ``meets``. Mixed allocations can measure far below their
    estimate (on kodim20, 0.932 against 0.950: flat cells at one iteration beside busy ones at three),
    and the gap shrinks as the aim nears the uniform count's estimate; raising the aim by the whole
    shortfall would overshoot every allocation the first pass offers and leave only the uniform count.
    After two, along the line through the last two: allocations whose gap does not shrink near
    ``meets`` (a 24 Mpx photo's stayed 0.0016 below their estimates) would otherwise creep towards it
    for every try.
    """
    if len(misses) >= 2:
        (aim_0, value_0), (aim_1, value_1) = misses[-2:]
        if aim_1 > aim_0 and value_1 > value_0:
            return aim_1 + (wanted - value_1) * (aim_1 - aim_0) / (value_1 - value_0) + step
    (low_aim, low_value), (high_aim, high_value) = misses[-1], meets
    if high_value <= low_value:
        return high_aim
    fraction = min(1.0, (wanted - low_value) / (high_value - low_value))
    return low_aim + fraction * (high_aim - low_aim) + step


class QualityGoal:
    """Reach an MS-SSIM or PSNR in the fewest bits; the quality reported is measured on the decoded image."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.kind = target.kind
        self.measure = MEASURES[self.kind]
        self.aim = target.value + _ESTIMATE_MARGIN[self.kind]
        self.layer_coder = LayerCoder(self.kind, self.aim, self.measure)
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
            pending = pool.submit(self.layer_coder.code, run, 0) if layer_wanted else None
            self._network_pass(run)
            self.choose_postfilters(run)
            if pending is not None:
                self.layer = pending.result()

    def choose_postfilters(self, run: CompressRun) -> None:
        """The receiver's chroma filter on the network's image where it does not lower the goal's quality,
        judged on the first pass's image at the fewest uniform iterations estimated to meet the aim: on
        some photos it lowers MS-SSIM by 0.002, which costs a whole iteration's bits (decision 43)."""
        curve = self._uniform_curve(run)
        n = next((n for n, q in enumerate(curve, 1) if q >= self.aim), run.iterations_run)
        deblocked = run.uniform.reconstruction(n, Postfilters.DEBLOCK)
        filtered = run.timed("postfilter_seconds", filter_chroma, deblocked)
        keeps = run.timed("metrics_seconds", self.measure, run.rgb, filtered) >= run.timed(
            "metrics_seconds", self.measure, run.rgb, deblocked
        )
        run.postfilters = Postfilters.DEBLOCK_AND_CHROMA if keeps else Postfilters.DEBLOCK
        run.uniform.postfilters = run.postfilters

    def settles_colour(self, codec: NetworkCoder) -> bool:
        """Whether smooth patches get iterations until their colour settles at this target."""
        return codec.smooth_patch_delta_e > 0 and self.target.value >= _SETTLE_COLOUR_FROM[self.kind]

    def _network_pass(self, run: CompressRun) -> None:
        """The first pass through the backend."""
        codec = run.codec
        run.settle_colour = self.settles_colour(codec)
        # Tiles with smooth patches run one iteration past the aim: where their colour settles
        # (minimum_counts); a big image's other tiles do not pay for it.
        one_more = (
            run.geometry.cell_iterations(run.smooth.astype(np.int32)) > 0 if run.settle_colour else None
        )
        run.first_pass(codec.max_iterations, EarlyExit(self.kind, self.aim, codec.extra_iterations, one_more))
        floor = self._smooth_floor(run)
        if run.iterations_run < min(codec.max_iterations, floor):  # smooth patches need more: that far
            run.first_pass(min(codec.max_iterations, floor), None)

    def _settles_smooth_patches(self, run: CompressRun) -> bool:
        """Whether this target settles the colour of smooth patches and the image has any."""
        return self.settles_colour(run.codec) and bool(run.smooth.any())

    def _smooth_floor(self, run: CompressRun) -> int:
        """Iterations the first pass runs at least: smooth patches' floor where their colour settles."""
        return run.codec.smooth_patch_iterations if self._settles_smooth_patches(run) else 1

    def _uniform_curve(self, run: CompressRun) -> list[float]:
        """The estimated quality of every uniform count the first pass ran, 1..N."""
        assert run.uniform is not None
        table = run.uniform.quality
        return [table.estimate(self.kind, run.uniform_counts(n)) for n in range(1, run.iterations_run + 1)]

    def reach(self, run: CompressRun) -> int:
        """How many iterations :meth:`first_pass` runs for this target on ``run``'s image, from the quality
        table of a first pass that ran at least as far (as one call: tiles that stop sooner are not
        told apart)."""
        met = next((n for n, q in enumerate(self._uniform_curve(run), 1) if q >= self.aim), None)
        if met is None:
            return run.iterations_run
        one_more = int(self._settles_smooth_patches(run))  # EarlyExit's one more for smooth tiles
        return min(
            run.iterations_run, max(met + run.codec.extra_iterations + one_more, self._smooth_floor(run))
        )

    def candidates(self, run: CompressRun) -> list[Candidate]:
        """The fewest uniform iterations estimated to meet the aim (or all), then rate control's
        allocations: each settled on a composite image before it is decoded and measured, unless the
        layer beats it anyway."""
        table = run.uniform.quality
        curve = self._uniform_curve(run)
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
        # A miss moves the aim towards the uniform count (measured): its own estimate against its value. Where
        # smooth patches' floor mixed its counts, the estimate runs above the value as any mixed allocation's
        # does; the value alone made a trap where it barely met the target (a 24 Mpx photo: eight misses).
        uniform_point = (table.estimate(self.kind, uniform.counts), uniform.value)
        misses: list[tuple[float, float]] = []
        decodes = 0
        for _ in range(_QUALITY_TRIES):
            acceptable = lambda c, aim=aim: table.estimate(self.kind, c) >= aim  # noqa: E731
            counts = run.allocate(self.kind, acceptable, True, uniform.counts)
            if counts is None or np.array_equal(counts, uniform.counts):
                break
            if 1 - run.raw_bits(counts) / uniform.raw_bits < _MIN_SAVING:
                break  # not worth a decode
            # The allocation may clear the aim by far (its cells' counts are whole): the next aim starts
            # from its own estimate, or the same allocation would come back.
            estimate = max(aim, table.estimate(self.kind, counts))
            composite = run.composite(counts)
            predicted = run.timed("rate_control_seconds", self.measure, run.rgb, composite)
            if not self.target.met_by(predicted):
                misses.append((estimate, predicted))
                aim = next_aim(misses, uniform_point, self.target.value, _AIM_STEP[self.kind])
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
            misses.append((estimate, value))
            aim = next_aim(misses, uniform_point, self.target.value, _AIM_STEP[self.kind])
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
            layer = self.layer_coder.code(run, min(base, run.iterations_run))
        if not self.target.met_by(layer.value) if met else layer.value <= achieved:
            return chosen, achieved
        if met and not self._layer_wins(run, layer, chosen):
            return chosen, achieved
        layer.data = layer.data or run.coded(layer.counts, layer.refinement, layer.layer_filtered)
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
        layer.data = layer.data or run.coded(layer.counts, layer.refinement, layer.layer_filtered)
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


#: A perceptual goal's allocations (judged on their composite image, a little above their decode) must
#: clear the score by this much before they are decoded.
_COMPOSITE_MARGIN = 0.3
#: Allocations a perceptual goal tries between two uniform counts (each a composite and a measurement).
_PERCEPTUAL_TRIES = 3
#: Iterations a perceptual goal's first pass runs before it knows whether the rest could reach the score,
#: and the most the network's later iterations (from the 5th to the 10th) added to the score of 14
#: training photos (12.4), with a margin: a photo scoring further below the target after the first
#: iterations is not encoded further, because no further iteration could reach the target. Only the time
#: of a pass that cannot win is saved (decision 61).
_PERCEPTUAL_FIRST_ITERATIONS = 5
_NETWORK_LATE_GAIN = 15.0


class PerceptualGoal(QualityGoal):
    """Reach a SSIMULACRA 2 score in the fewest bits. The backend's quality table holds MS-SSIM terms only,
    so the network's candidates are found by measuring: the fewest uniform iterations that reach the
    score (a bisection over the first pass's own images), then rate control's MS-SSIM allocations between
    that count and the one below, each judged by the score of its composite and decoded only if it wins.
    The layer searches its step by the score itself; the smaller bitstream reaching the score is kept, by
    size alone (no rule on visible jumps: the score sees them)."""

    def first_pass(self, run: CompressRun) -> None:
        """The network's first ``_PERCEPTUAL_FIRST_ITERATIONS`` iterations, and every iteration the model
        offers where those do not reach the score and the rest could (no early exit on MS-SSIM: 14 training
        photos reached a score of 30 anywhere between MS-SSIM 0.93 and 0.984); the layer coded meanwhile."""
        layer_wanted = run.codec.refinement_base_iterations == 0
        most = run.codec.max_iterations
        with ThreadPoolExecutor(max_workers=1) as pool:
            pending = pool.submit(self.layer_coder.code, run, 0) if layer_wanted else None
            run.settle_colour = False
            run.first_pass(min(most, _PERCEPTUAL_FIRST_ITERATIONS), None)
            self._measured: dict[int, float] = {}
            first = run.iterations_run
            if first < most and self.aim - _NETWORK_LATE_GAIN <= self._score(run, first) < self.aim:
                run.first_pass(most, None)
                self._measured = {}
            self.fewest = self._fewest_reaching(run)
            self.choose_postfilters(run)
            if pending is not None:
                self.layer = pending.result()

    def _score(self, run: CompressRun, n: int) -> float:
        """The score of every patch at ``n`` iterations, measured once."""
        if n not in self._measured:
            image = run.uniform.reconstruction(n)
            self._measured[n] = run.timed("metrics_seconds", self.measure, run.rgb, image)
        return self._measured[n]

    def _fewest_reaching(self, run: CompressRun) -> int:
        """The fewest uniform iterations whose image reaches the score (bisection: the score rises with
        iterations, but for a last one that can lose a little), else the best-scoring count tried."""
        low, high = 1, run.iterations_run
        if self._score(run, high) < self.aim:
            best = max(range(max(1, high - 2), high + 1), key=lambda n: self._score(run, n))
            return best
        while low < high:
            middle = (low + high) // 2
            if self._score(run, middle) >= self.aim:
                high = middle
            else:
                low = middle + 1
        return high

    def choose_postfilters(self, run: CompressRun) -> None:
        """The receiver's chroma filter where it does not lower the score, judged at the fewest uniform
        iterations that reach it."""
        n = self.fewest
        deblocked = run.uniform.reconstruction(n, Postfilters.DEBLOCK)
        filtered = self._score(run, n)  # with both filters, as the first pass's images show by default
        keeps = filtered >= run.timed("metrics_seconds", self.measure, run.rgb, deblocked)
        run.postfilters = Postfilters.DEBLOCK_AND_CHROMA if keeps else Postfilters.DEBLOCK
        run.uniform.postfilters = run.postfilters
        if not keeps:
            self._measured = {}

    def reach(self, run: CompressRun) -> int:
        """Every iteration (:meth:`first_pass` runs no early exit)."""
        return run.iterations_run

    def candidates(self, run: CompressRun) -> list[Candidate]:
        """The fewest uniform iterations reaching the score, then allocations between it and one fewer:
        rate control's for MS-SSIM aims bisected by the score of their composite."""
        n = self.fewest
        uniform = run.uniform_candidate(n, self._score(run, n))
        found = [uniform]
        if not self.target.met_by(uniform.value) or n == 1:
            return found
        table = run.uniform.quality
        low = table.estimate("msssim", run.uniform_counts(n - 1))
        high = table.estimate("msssim", uniform.counts)
        for _ in range(_PERCEPTUAL_TRIES):
            aim = 0.5 * (low + high)
            acceptable = lambda c, aim=aim: table.estimate("msssim", c) >= aim  # noqa: E731
            counts = run.allocate("msssim", acceptable, True, uniform.counts)
            if counts is None or np.array_equal(counts, uniform.counts):
                low = aim
                continue
            if 1 - run.raw_bits(counts) / uniform.raw_bits < _MIN_SAVING:
                break
            composite = run.composite(counts)
            value = run.timed("rate_control_seconds", self.measure, run.rgb, composite)
            if value >= self.aim + _COMPOSITE_MARGIN:
                bits = run.raw_bits(counts)
                found.append(Candidate(counts, composite, None, value, False, bits, decoded=False))
                high = aim
            else:
                low = aim
        return found

    def choose(self, run: CompressRun, candidates: list[Candidate]) -> tuple[Candidate, float]:
        """The fewest bits whose decoded image reaches the score: allocations are decoded and measured
        in turn (their composite is a little off), a uniform count's image is its decode already."""
        meeting = sorted((c for c in candidates if self.target.met_by(c.value)), key=lambda c: c.raw_bits)
        for candidate in meeting:
            if candidate.decoded:
                return candidate, candidate.value
            if self._layer_beats(run, candidate):
                assert self.layer is not None
                return self.layer, self.layer.value
            image = run.decoded(candidate.counts)
            value = run.timed("metrics_seconds", self.measure, run.rgb, image)
            if self.target.met_by(value):
                decoded = dataclasses.replace(candidate, image=image, value=value, exact=True, decoded=True)
                return decoded, value
        best = max(candidates, key=lambda c: c.value)
        return best, best.value


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


def allocations_below(
    run: CompressRun, values: Sequence[float], ceiling: np.ndarray | None
) -> list[tuple[float, Candidate]]:
    """For each MS-SSIM in ``values`` (below what the chosen bitstream reaches), the allocation a
    compress at that target would choose from the same first pass, decoded and measured, with its value.

    With ``ceiling`` (the chosen network bitstream's counts) each patch is kept within it, so that its
    bits are all in the chosen bitstream: the quality ladder's rungs that cut each patch at its own count
    (decision 40); a value whose allocation cuts every patch at one count (a prefix the ladder has anyway)
    gives none. Without it (the layer made the bitstream, which holds no network bits) any allocation of
    the first pass will do: the ladder's alternates, coded beside the master (decision 41), each with the
    chroma filter a compress at its target would choose (decision 43), its bitstream in ``data``. A value
    that no allocation meets gives none."""
    assert run.uniform is not None
    found: list[tuple[float, Candidate]] = []
    for value in sorted(values):
        goal = QualityGoal(Target("msssim", value))
        # The first pass as it would have stopped for this target (a patch's floor and rate control's
        # choices depend on the iterations it ran), in a run of its own that shares the timings; a
        # rung's decode needs its final image alone.
        trial = dataclasses.replace(
            run,
            uniform=run.uniform.first(goal.reach(run)),
            settle_colour=goal.settles_colour(run.codec),
            keep_frames=False,
        )
        if ceiling is None:  # an alternate's bits are its own: its chroma filter chosen for this target
            goal.choose_postfilters(trial)
        for candidate in sorted(goal.candidates(trial), key=lambda c: c.raw_bits):
            counts = candidate.counts if ceiling is None else np.minimum(candidate.counts, ceiling)
            if ceiling is not None and np.array_equal(counts, np.minimum(ceiling, counts.max(initial=0))):
                break  # a prefix of the bitstream: no smaller allocation left to try
            if candidate.decoded and np.array_equal(counts, candidate.counts):
                image = candidate.image
                exact = candidate.value if candidate.exact else None
                measured = exact or trial.timed("metrics_seconds", msssim, trial.rgb, image)
            else:
                image = trial.decoded(counts)
                measured = trial.timed("metrics_seconds", msssim, trial.rgb, image)
            if measured >= value:
                data = None if ceiling is not None else trial.coded(counts)
                found.append((value, Candidate(counts, image, data, measured, True, trial.raw_bits(counts))))
                break
    return found


def goal_for(target: Target) -> QualityGoal | SizeGoal:
    """The strategy for ``target``'s kind."""
    if target.kind == "bpp":
        return SizeGoal(target)
    return PerceptualGoal(target) if target.kind == "ssimulacra2" else QualityGoal(target)
