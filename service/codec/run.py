"""One compress call's state and the operations both coders share: the image and its geometry, the
network's first pass, candidates (each a way to code the image), timings and progress.

The goals (service/codec/goals.py) drive a :class:`CompressRun` through the network (a
:class:`NetworkCoder`, ``ImageCodec`` in service/codec/pipeline.py) and the refinement layer
(service/codec/layer_coder.py), and choose among the candidates they give.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from service.codec.encoding import EarlyExit, Encoding, grey_image
from service.codec.entropy import truncate
from service.codec.patches import Geometry
from service.codec.postfilters import WRITTEN, Postfilters
from service.codec.rate_control import allocate
from service.codec.restoration import Restorer

__all__ = ["FIRST_PASS_SHARE", "Candidate", "CompressRun", "NetworkCoder", "Progress"]

#: Told the stage compress entered and the share of the work done (0-1), from the worker thread.
Progress = Callable[[str, float], None]

#: Share of compress's work the first pass (the uniform encode) stands for in progress reports.
FIRST_PASS_SHARE = 0.7
#: One just-noticeable colour difference (ΔE*ab): a visible jump between neighbouring smooth patches.
_JND = 2.3


class NetworkCoder(Protocol):
    """What the goals ask of the network's side (``ImageCodec``): its first pass, decodes and bitstreams,
    and the settings that shape its choices."""

    max_iterations: int
    extra_iterations: int
    smooth_patch_iterations: int
    smooth_patch_delta_e: float
    busy_patch_delta_e: float
    refinement_base_iterations: int | None
    restorer: Restorer

    def encode(
        self,
        rgb: np.ndarray,
        iterations: int,
        version: int,
        early_exit: EarlyExit | None = None,
        progress: Callable[[float], None] | None = None,
    ) -> Encoding: ...

    def decode_bits(
        self,
        geometry: Geometry,
        version: int,
        bits: np.ndarray,
        cell_iterations: np.ndarray,
        *,
        filters: Postfilters = WRITTEN,
    ) -> np.ndarray: ...

    def decode_frames(
        self,
        geometry: Geometry,
        version: int,
        bits: np.ndarray,
        cell_iterations: np.ndarray,
        *,
        filters: Postfilters = WRITTEN,
    ) -> Sequence[np.ndarray]: ...

    def bitstream(
        self,
        encoding: Encoding,
        patch_iterations: np.ndarray,
        coder_id: int | None = None,
        refinement: bytes = b"",
        layer_filtered: bool = True,
    ) -> bytes: ...


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
    #: whether the receiver chroma-filters the layer's image (layer format 8; else 7)
    layer_filtered: bool = True

    @property
    def coder(self) -> str:
        """Who codes this candidate: "network", "layer" (alone) or "network+layer"."""
        if not self.refinement:
            return "network"
        return "network+layer" if int(self.counts.max(initial=0)) else "layer"


@dataclass
class CompressRun:
    """One compress call: the image, its geometry and model version, the first pass, and timings."""

    codec: NetworkCoder
    rgb: np.ndarray
    geometry: Geometry
    version: int
    cost: np.ndarray  # raw bits one iteration of each patch costs, [patches_y, patches_x]
    timings: dict[str, float] = field(default_factory=dict)
    uniform: Encoding | None = None
    progress: Progress | None = None
    _floor: tuple[Encoding, bool, np.ndarray] | None = None
    #: whether smooth patches get iterations until their colour settles (high quality targets only)
    settle_colour: bool = False
    #: bytes of each coder's smallest bitstream meeting the target that was compared ("network", "layer")
    coder_bytes: dict[str, int] = field(default_factory=dict)
    #: whether decodes keep every iteration's image, for the quality ladder (``frames``)
    keep_frames: bool = False
    #: what the receiver does to the network's image (the goal may leave the chroma filter out: decision 43)
    postfilters: Postfilters = WRITTEN
    _frames: dict[bytes, Sequence[np.ndarray]] = field(default_factory=dict)

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
        it differ by about one just-noticeable difference (ΔE 2.3) at most (decision 25). Any other
        patch gets as many as it takes its mean colour to come within ``busy_patch_delta_e`` (or within
        half of it of the closest it comes; decision 44)."""
        assert self.uniform is not None
        cached = self._floor
        if cached is not None and cached[0] is self.uniform and cached[1] == self.settle_colour:
            return cached[2]
        codec = self.codec
        floor = np.where(self.smooth, codec.smooth_patch_iterations, 1)
        smooth_tolerance = codec.smooth_patch_delta_e if self.settle_colour else 0.0
        busy_tolerance = codec.busy_patch_delta_e if self.settle_colour else 0.0
        settles_smooth = smooth_tolerance > 0 and bool(self.smooth.any())
        settles_busy = busy_tolerance > 0 and not bool(self.smooth.all())
        counts = np.arange(1 if settles_busy else int(floor.max()), self.iterations_run + 1)
        if (settles_smooth or settles_busy) and counts.size:
            offsets = np.stack([self.colour_offsets(int(n)) for n in counts])  # [counts, py, px]
            # A busy patch that never comes within its tolerance settles where it comes within half
            # of it of the closest it gets: more iterations would buy a fraction of a JND.
            busy_limit = np.maximum(busy_tolerance, offsets.min(axis=0) + busy_tolerance / 2)
            tolerance = np.where(self.smooth, smooth_tolerance, busy_limit)
            within = (offsets <= tolerance) & (counts[:, None, None] >= floor)
            settled = np.where(within.any(axis=0), counts[within.argmax(axis=0)], self.iterations_run)
            if settles_smooth:
                floor = np.where(self.smooth, np.maximum(floor, settled), floor)
            if settles_busy:
                floor = np.where(self.smooth, floor, settled)
        self._floor = (self.uniform, self.settle_colour, floor)
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
        self.uniform.postfilters = self.postfilters
        return self.uniform

    @property
    def iterations_run(self) -> int:
        assert self.uniform is not None
        return self.uniform.bits.shape[0]

    def coded(
        self, counts: np.ndarray, refinement_payload: bytes = b"", layer_filtered: bool = True
    ) -> bytes:
        """The bitstream of the first pass's bits truncated to per-patch ``counts`` (and a refinement,
        chroma-filtered at the receiver or not)."""
        return self.timed(
            "entropy_coding_seconds",
            functools.partial(
                self.codec.bitstream, refinement=refinement_payload, layer_filtered=layer_filtered
            ),
            self.uniform,
            counts,
        )

    def decoded(self, counts: np.ndarray) -> np.ndarray:
        """What the receiver decodes from the first pass's bits truncated to ``counts`` (a backend call;
        with ``keep_frames``, one that keeps the image after every iteration as well)."""
        assert self.uniform is not None
        cells = self.geometry.cell_iterations(counts)
        bits = truncate(self.uniform.bits[: int(counts.max())], cells)
        decode = self.codec.decode_frames if self.keep_frames else self.codec.decode_bits
        decode = functools.partial(decode, filters=self.postfilters)
        decoded = self.timed("decode_seconds", decode, self.geometry, self.version, bits, cells)
        if not self.keep_frames:
            return decoded
        self._frames[np.asarray(counts, np.int64).tobytes()] = decoded
        return decoded[-1]

    def frames(self, counts: np.ndarray) -> Sequence[np.ndarray]:
        """The image after each step of the network's bitstream with per-patch ``counts``, where known
        without a decode: kept from one (``keep_frames``), or a uniform count's, the first pass's own
        images (a tile that stopped sooner keeps its last, as the receiver does); else empty."""
        if not self.keep_frames or self.uniform is None:
            return []
        kept = self._frames.get(np.asarray(counts, np.int64).tobytes())
        if kept is not None:
            return kept
        n = int(counts.max(initial=0))
        if n and np.array_equal(counts, self.uniform_counts(n)):
            return [self.uniform.reconstruction(k) for k in range(1, n + 1)]
        return []

    def composite(self, counts: np.ndarray) -> np.ndarray:
        """The first pass's image with each patch at its own count: an allocation judged without a decode."""
        assert self.uniform is not None
        return self.uniform.composite(self.geometry.cell_iterations(counts))

    def uniform_candidate(self, n: int, value: float, data: bytes | None = None) -> Candidate:
        """Every patch at ``n`` iterations: a prefix of the first pass, so its image is exact."""
        assert self.uniform is not None
        counts = self.uniform_counts(n)
        return Candidate(counts, self.uniform.reconstruction(n), data, value, False, self.raw_bits(counts))
