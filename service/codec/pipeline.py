"""The image codec as the gateway runs it: pad, tile, call the backend, choose iterations, write bits.

::

    compress:   RGB ─▶ pad ─▶ tiles ─▶ backend "compress" (bits, reconstruction and per-cell quality
                    per iteration, stopping early) ─▶ rate control (allocation on the quality table)
                    ─▶ backend "decompress" of the allocation ─▶ measured ─▶ bitstream
    decompress: bitstream ─▶ bits per tile ─▶ backend "decompress" ─▶ stitch ─▶ crop
    progressive: bitstream ─▶ bits per tile ─▶ backend "decompress", every iteration's image ─▶ one each

Compress decodes too, so the reported quality is the quality the receiver sees.
"""

from __future__ import annotations

import dataclasses
import time
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import overload

import numpy as np

from service.backend.client import BackendClient
from service.codec import refinement
from service.codec.bitstream import DEBLOCKED_FORMAT_VERSION, FORMAT_VERSION, NETWORK_ONLY_FORMAT, Bitstream
from service.codec.context_model import ContextModel
from service.codec.encoding import EarlyExit, Encoding, grey_image
from service.codec.entropy import (
    CODER_CONTEXT,
    CODER_LEARNED,
    CODER_RAW,
    decode_payload,
    encode_payload,
    encode_prefix_payloads,
    truncate,
)
from service.codec.goals import allocations_below, goal_for
from service.codec.patches import CELL_SIZE, Geometry, Tile
from service.codec.postfilters import WRITTEN, Postfilters, network_shown
from service.codec.quality import MEASURES
from service.codec.rate_control import QualityTable, Target
from service.codec.restoration import Restorer
from service.codec.run import FIRST_PASS_SHARE, Candidate, CompressRun, Progress
from service.errors import (
    BackendUnavailable,
    BadParameter,
    InvalidBitstream,
    ModelVersionNotServed,
)

__all__ = ["Allocation", "CompressResult", "Decoded", "ImageCodec", "Progress"]

#: Model versions whose bitstreams a later version decodes bit for bit, so that the earlier one's files can
#: leave ``models/``: version 4 is version 3's weights and context model re-exported with one output more
#: (docs/model.md; a version-3 bitstream is a test fixture).
EQUIVALENT_VERSIONS = {3: 4}
#: Upper bound of pixels per backend call, so requests stay well inside gRPC message limits.
#: One 1024-px tile per call: on a 12 Mpx image, a third less peak memory than 4 Mpx calls (+2.0 GB
#: against +3.6 GB) and faster (113 s against 136 s), each call stopping at its own count (decision 22).
MAX_PIXELS_PER_CALL = 1_048_576
#: Bitstreams whose bits compress keeps for their quality ladder (one per request under way is enough).
_KNOWN_BITSTREAMS = 4


@dataclass(frozen=True)
class Allocation:
    """Per-patch iteration counts chosen for an MS-SSIM ``target``, the image they decode to and its
    MS-SSIM: within a network bitstream's own counts (``ImageCodec.cut`` makes its bytes), or, below a
    bitstream the layer made, coded beside it (``bitstream``)."""

    target: float
    counts: np.ndarray  # [patches_y, patches_x]
    image: np.ndarray  # uint8 [H, W, 3]
    msssim: float
    #: the allocation's own bitstream, where it is not a cut of the chosen one
    bitstream: bytes | None = None


@dataclass
class CompressResult:
    bitstream: bytes
    reconstruction: np.ndarray  # uint8 [H, W, 3]
    msssim: float
    psnr: float
    bpp: float
    iterations: int
    #: SSIMULACRA 2 of the reconstruction (NaN under 8 pixels a side)
    ssimulacra2: float
    patch_iterations: np.ndarray
    target: Target
    target_met: bool
    model_name: str
    model_version: int
    timings: dict[str, float] = field(default_factory=dict)
    #: bytes of the bitstream's refinement layer (0: the network's iterations alone)
    refinement_bytes: int = 0
    #: who made the bitstream: "network", "layer" (alone) or "network+layer" (a layer over iterations)
    coder: str = "network"
    #: the size of each coder's best bitstream meeting the target, where compress coded both
    coder_bytes: dict[str, int] = field(default_factory=dict)
    #: the image after each of the bitstream's steps, as a progressive receiver shows them (what each
    #: prefix decodes to), when compress was asked to keep them and had them without another decode
    #: (the network's bitstreams); empty otherwise
    frames: Sequence[np.ndarray] = field(default_factory=list)
    #: for the quality ladder, the allocations compress would choose at the codec's ``ladder_msssims``
    #: below this bitstream's quality: within its counts (``ImageCodec.cut``), or coded beside a
    #: bitstream the layer made
    allocations_below: list[Allocation] = field(default_factory=list)


@dataclass
class Decoded:
    stream: Bitstream
    image: np.ndarray  # uint8 [H, W, 3]
    timings: dict[str, float]


def _batches(tiles: list[Tile], cell_iterations: np.ndarray) -> list[tuple[int, list[Tile]]]:
    """Tiles grouped by shape and by their own iteration count (a batch runs one shape for one count:
    each tile runs exactly as many iterations as its largest patch count, in compress and decompress
    alike), split to bound each call's size. Returns (iterations, tiles) pairs."""
    groups: dict[tuple[int, int, int], list[Tile]] = defaultdict(list)
    for tile in tiles:
        groups[(tile.height, tile.width, int(cell_iterations[tile.cell_slice].max()))].append(tile)
    out = []
    for (h, w, iterations), group in groups.items():
        per_call = max(1, MAX_PIXELS_PER_CALL // (h * w))
        out.extend((iterations, group[i : i + per_call]) for i in range(0, len(group), per_call))
    return out


def _coders(context_model: ContextModel | None) -> list[int]:
    """The entropy coders a bitstream is written with, the smaller payload kept: the model version's
    learned context coder (the count-based one without a context model), or raw bits."""
    return [CODER_CONTEXT if context_model is None else CODER_LEARNED, CODER_RAW]


def _network_only(stream: Bitstream) -> int:
    """The format of ``stream``'s network iterations without its layer, shown as the whole was."""
    version = stream.format_version
    return NETWORK_ONLY_FORMAT.get(version, version) if stream.network_deblocked else 3


def _layer_steps(stream: Bitstream, iterations: int | None) -> list[bytes]:
    """The refinement payloads a receiver of ``stream``'s first ``iterations`` steps (None: all) shows
    in turn after the network's: none, format 7's first step (the block means), or both steps."""
    if not stream.refinement:
        return []
    shown = stream.steps if iterations is None else min(iterations, stream.steps)
    layer = shown - int(stream.patch_iterations.max(initial=0))
    if layer <= 0:
        return []
    if refinement.steps(stream.refinement, stream.layer_format) == 1:
        return [stream.refinement]
    return [refinement.first_step(stream.refinement), stream.refinement][:layer]


class _ShownFrames(Sequence[np.ndarray]):
    """The receiver's image after each iteration, cropped and post-filtered when first asked for, from the
    padded images [T, Hp, Wp, 3] of one decode."""

    def __init__(self, padded: np.ndarray, geometry: Geometry, filters: Postfilters) -> None:
        self._padded, self._geometry, self._filters = padded, geometry, filters
        self._shown: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self._padded)

    def __iter__(self) -> Iterator[np.ndarray]:
        """Each frame once, not kept (a progressive stream of a big image holds one at a time)."""
        for index, frame in enumerate(self._padded):
            kept = self._shown.get(index)
            yield kept if kept is not None else network_shown(self._geometry.crop(frame), self._filters)

    @overload
    def __getitem__(self, index: int) -> np.ndarray: ...
    @overload
    def __getitem__(self, index: slice) -> list[np.ndarray]: ...
    def __getitem__(self, index: int | slice) -> np.ndarray | list[np.ndarray]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        index = range(len(self))[index]  # negative indices, and IndexError past the end
        if index not in self._shown:
            self._shown[index] = network_shown(self._geometry.crop(self._padded[index]), self._filters)
        return self._shown[index]


def _place(target: np.ndarray, values: np.ndarray, where: tuple[slice, slice]) -> None:
    """Write per-iteration ``values`` [n, ...] into ``target`` [N, ...] at ``where``; a tile that
    stops before N keeps its last value, as the receiver keeps its last image."""
    n = values.shape[0]
    target[(slice(0, n), *where)] = values
    target[(slice(n, None), *where)] = values[-1]


class ImageCodec:
    """Compress and decompress images with the model behind ``client``."""

    def __init__(
        self,
        client: BackendClient,
        model_name: str,
        model_version: int | None = None,
        patch_size: int = 32,
        tile_size: int = 1024,
        max_iterations: int = 16,
        extra_iterations: int = 0,
        max_pixels: int = 24_000_000,
        smooth_patch_iterations: int = 3,
        smooth_patch_delta_e: float = 1.2,
        busy_patch_delta_e: float = 2.3,
        refinement_base_iterations: int | None = 0,
        ladder_msssims: tuple[float, ...] = (),
    ) -> None:
        self.client = client
        self.model_name = model_name
        self.model_version = model_version
        self.patch_size, self.tile_size = patch_size, tile_size
        self.max_iterations = max_iterations
        #: iterations the first pass runs past the uniform count meeting a quality target, so that
        #: rate control can give busy patches more than that count (bytes against time).
        self.extra_iterations = extra_iterations
        self.max_pixels = max_pixels
        #: fewest iterations rate control gives a smooth patch (blocks show beside 1-iteration patches)
        self.smooth_patch_iterations = smooth_patch_iterations
        self.smooth_patch_delta_e = smooth_patch_delta_e
        #: any other patch gets iterations until its mean colour is within this ΔE*ab (0: no floor)
        self.busy_patch_delta_e = busy_patch_delta_e
        #: network iterations under the refinement layer (None: no refinement layer)
        self.refinement_base_iterations = refinement_base_iterations
        #: MS-SSIMs at which compress, asked for frames (the quality ladder), also finds the allocation
        #: within the bitstream's counts that a compress at that target would choose (decision 40)
        self.ladder_msssims = ladder_msssims
        #: the receiver's restoration filter, a servable of its own (used where the backend serves it)
        self.restorer = Restorer(client)
        self._signature_defs: dict[int, dict] = {}
        self._context_models: dict[int, ContextModel | None] = {}
        #: the network bits of the last few bitstreams compress made for a quality ladder, by their bytes:
        #: the ladder cuts them at once, and their payloads need not be decoded again (:meth:`_parse`)
        self._known_bits: OrderedDict[bytes, np.ndarray] = OrderedDict()

    # ------------------------------------------------------------------ versions and metadata

    def current_version(self) -> int:
        """The version new bitstreams are made with: the configured one, else the newest served."""
        if self.model_version is not None:
            return self.model_version
        versions = self.client.available_versions(self.model_name)
        if not versions:
            raise BackendUnavailable(f"the backend serves no version of model {self.model_name!r}")
        return versions[-1]

    def _signatures(self, version: int) -> dict:
        if version not in self._signature_defs:
            self._signature_defs[version] = self.client.signature_defs(self.model_name, version)
        return self._signature_defs[version]

    def _channels(self, version: int) -> dict[str, int]:
        """Channel counts from the model's signatures: ``bits`` and each ``dec_state_*``."""
        inputs = self._signatures(version)["decode_step"].inputs
        return {
            name: inputs[name].tensor_shape.dim[-1].size
            for name in inputs
            if name == "bits" or name.startswith("dec_state_")
        }

    def context_model(self, version: int) -> ContextModel | None:
        """The entropy coder's context model shipped with ``version`` (None before it shipped one)."""
        if version not in self._context_models:
            model = None
            if "context_model" in self._signatures(version):
                out = self.client.predict(
                    self.model_name, version, "context_model", {"batch": np.zeros(1, np.int32)}
                )
                model = ContextModel.from_arrays({name: value[0] for name, value in out.items()})
            self._context_models[version] = model
        return self._context_models[version]

    # ------------------------------------------------------------------ compress

    def _encode(
        self,
        padded: np.ndarray,
        geometry: Geometry,
        version: int,
        cell_iterations: np.ndarray,
        early_exit: EarlyExit | None,
        progress: Callable[[float], None] | None = None,
    ) -> dict:
        """Run ``compress`` on every tile and stitch the outputs over the padded image as they come;
        ``progress`` hears the share of the calls done after each."""
        batches = _batches(geometry.tiles(), cell_iterations)
        stop = {"msssim": 0.0, "psnr": 0.0}
        if early_exit is not None:
            stop[early_exit.kind] = early_exit.quality
        cells_y, cells_x = geometry.cells
        most = int(cell_iterations.max(initial=1))  # no call runs more
        stitched: dict[str, np.ndarray] = {}
        # One full-size image per iteration, added when a call first reaches it, so the gateway holds
        # what the image needs and never every call's answer at once (decision 26).
        frames: list[np.ndarray] = []
        run_lengths = np.zeros((cells_y, cells_x), np.int32)
        for done, (_, batch) in enumerate(batches, start=1):
            size = len(batch)
            inputs = {
                "image": np.stack([padded[t.pixel_slice] for t in batch]),
                "iterations": np.stack([cell_iterations[t.cell_slice] for t in batch]).astype(np.int32),
                "stop_msssim": np.full(size, stop["msssim"], np.float32),
                "stop_psnr": np.full(size, stop["psnr"], np.float32),
                "extra_iterations": np.array(
                    [early_exit.extra_for(t) if early_exit else 0 for t in batch], np.int32
                ),
            }
            out = self.client.predict(self.model_name, version, "compress", inputs)
            if not stitched:
                stitched = {
                    "bits": np.zeros((most, cells_y, cells_x, out["bits"].shape[-1]), np.int8),
                    "msssim_sums": np.zeros((most, cells_y, cells_x, *out["msssim_sums"].shape[-2:])),
                    "squared_errors": np.zeros((most, cells_y, cells_x)),
                    "msssim_positions": np.zeros((1, cells_y, cells_x, out["msssim_positions"].shape[-1])),
                }
            ran = out["bits"].shape[1]
            while len(frames) < ran:  # tiles placed before keep their last image in the new frame
                frames.append(
                    frames[-1].copy()
                    if frames
                    else np.zeros((geometry.padded_height, geometry.padded_width, 3), np.uint8)
                )
            for i, tile in enumerate(batch):
                for name, target in stitched.items():
                    values = out[name][i][None] if name == "msssim_positions" else out[name][i]
                    _place(target, values, tile.cell_slice)
                for t, frame in enumerate(frames):
                    frame[tile.pixel_slice] = out["reconstructions"][i][min(t, ran - 1)]
                run_lengths[tile.cell_slice] = ran
            del out
            if progress is not None:
                progress(done / len(batches))
        total = len(frames)
        answer: dict = {name: values[:total] for name, values in stitched.items()}
        answer["msssim_positions"] = stitched["msssim_positions"]  # one per cell, not per iteration
        answer["reconstructions"] = frames
        answer["run_lengths"] = run_lengths
        return answer

    def encode(
        self,
        rgb: np.ndarray,
        iterations: int | np.ndarray,
        version: int | None = None,
        early_exit: EarlyExit | None = None,
        progress: Callable[[float], None] | None = None,
    ) -> Encoding:
        """Encode uint8 [H,W,3] ``rgb`` with ``iterations`` per patch (one count for all, or an array
        [patches_y, patches_x]); returns the bits, the reconstruction after every iteration and
        their per-patch quality. With ``early_exit``, each backend call stops once its tiles reach the quality
        (tiles that stop sooner keep their last image and quality)."""
        geometry = Geometry(rgb.shape[1], rgb.shape[0], self.patch_size, self.tile_size)
        version = self.current_version() if version is None else version
        counts = np.broadcast_to(np.asarray(iterations, np.int32), geometry.patches)
        cells = geometry.cell_iterations(counts)
        out = self._encode(geometry.pad(rgb), geometry, version, cells, early_exit, progress)
        table = QualityTable.from_cells(
            out["msssim_sums"], out["msssim_positions"][0], out["squared_errors"], geometry
        )
        per = geometry.patch_size // CELL_SIZE  # tiles hold whole patches: any cell of a patch tells
        limits = out["run_lengths"][::per, ::per]
        return Encoding(geometry, version, out["bits"], out["reconstructions"], table, limits)

    def bitstream(
        self,
        encoding: Encoding,
        patch_iterations: np.ndarray,
        coder_id: int | None = None,
        refinement: bytes = b"",
        layer_filtered: bool = True,
    ) -> bytes:
        """The bitstream of ``encoding`` truncated to ``patch_iterations`` [patches_y, patches_x], with
        the ``refinement`` layer's payload if any (over no network iteration, chroma-filtered at the
        receiver or not: ``layer_filtered``).

        By default the model version's learned context coder (the count-based one for versions
        without a context model), unless raw bits are smaller (never worse than raw).
        """
        # Over no network iteration the layer's own filtering decides; over some, the network image's.
        alone = not patch_iterations.any()
        filtered = layer_filtered if alone else encoding.postfilters == Postfilters.DEBLOCK_AND_CHROMA
        return self._pack(
            encoding.geometry,
            encoding.version,
            encoding.bits,
            patch_iterations,
            coder_id,
            refinement,
            FORMAT_VERSION if filtered else DEBLOCKED_FORMAT_VERSION,
        )

    def _pack(
        self,
        geometry: Geometry,
        version: int,
        bits: np.ndarray,
        patch_iterations: np.ndarray,
        coder_id: int | None = None,
        refinement: bytes = b"",
        format_version: int = FORMAT_VERSION,
    ) -> bytes:
        cell_iterations = geometry.cell_iterations(patch_iterations)
        total = int(cell_iterations.max(initial=0))
        bits = bits[:total]
        context_model = self.context_model(version)
        coders = [coder_id] if coder_id is not None else _coders(context_model)
        payloads = {c: encode_payload(c, bits, cell_iterations, context_model) for c in coders}
        return self._packed(
            geometry, version, bits.shape[-1], patch_iterations, payloads, refinement, format_version
        )

    def _packed(
        self,
        geometry: Geometry,
        version: int,
        bits_per_cell: int,
        patch_iterations: np.ndarray,
        payloads: dict[int, bytes],
        refinement: bytes,
        format_version: int,
    ) -> bytes:
        """The bitstream with the smallest of ``payloads`` (by coder id)."""
        chosen = min(payloads, key=lambda c: len(payloads[c]))
        return Bitstream(
            model_name=self.model_name,
            model_version=version,
            width=geometry.width,
            height=geometry.height,
            patch_size=geometry.patch_size,
            tile_size=geometry.tile_size,
            bits_per_cell=bits_per_cell,
            patch_iterations=patch_iterations.astype(np.uint8),
            payload=payloads[chosen],
            coder_id=chosen,
            format_version=format_version,
            refinement=refinement,
        ).to_bytes()

    def truncations(self, data: bytes, iterations: list[int]) -> list[bytes]:
        """The bitstream ``data`` cut to each of ``iterations`` (its payload decoded once): valid, smaller
        bitstreams that decode to what a progressive receiver shows after that many steps (the
        refinement layer's steps, if any, come after the network's last)."""
        stream, bits, _ = self._parse(data, cutting=True)
        layers = {k: _layer_steps(stream, k) for k in iterations}
        network = [k for k in iterations if not layers[k] and 1 <= k <= len(bits)]
        prefixes = self._network_prefixes(stream, bits, network) if network else {}
        cuts = []
        for k in iterations:
            layer = layers[k]
            if layer and layer[-1] is stream.refinement:
                cuts.append(data)
            elif layer:  # the network's bits as they are, the layer cut to its first step
                cuts.append(dataclasses.replace(stream, refinement=layer[-1]).to_bytes())
            elif k in prefixes:
                cuts.append(prefixes[k])
            else:
                cuts.append(self._network_cut(stream, bits, np.minimum(stream.patch_iterations, max(0, k))))
        return cuts

    def cut(self, data: bytes, counts: np.ndarray) -> bytes:
        """The network's bitstream ``data`` with each patch cut to its own count of ``counts``
        [patches_y, patches_x] (at most its own): a valid, smaller bitstream, byte for byte the one
        compress codes for those counts, made without encoding again."""
        return self.cuts(data, [counts])[0]

    def cuts(self, data: bytes, counts: Sequence[np.ndarray]) -> list[bytes]:
        """:meth:`cut` to each of ``counts``, the payload decoded once."""
        stream, bits, _ = self._parse(data, cutting=True)
        if stream.refinement:
            raise BadParameter("a bitstream with a refinement layer is cut by steps, not per patch")
        cuts = []
        for patch_counts in map(np.asarray, counts):
            shape = stream.patch_iterations.shape
            if patch_counts.shape != shape or (patch_counts > stream.patch_iterations).any():
                raise BadParameter(f"per-patch counts must be {shape} and at most the bitstream's own")
            cuts.append(self._network_cut(stream, bits, patch_counts))
        return cuts

    def _network_cut(self, stream: Bitstream, bits: np.ndarray, counts: np.ndarray) -> bytes:
        """The network's iterations of ``stream`` cut to per-patch ``counts``, shown as the whole was."""
        shown = _network_only(stream)
        return self._pack(stream.geometry, stream.model_version, bits, counts, None, b"", shown)

    def _network_prefixes(self, stream: Bitstream, bits: np.ndarray, steps: list[int]) -> dict[int, bytes]:
        """:meth:`_network_cut` of every patch at most k iterations, for each k of ``steps`` (1 to the
        bits' count), from one pass of the entropy coders over ``bits``: byte for byte the same."""
        context_model = self.context_model(stream.model_version)
        cells = stream.geometry.cell_iterations(stream.patch_iterations)
        prefixes = {c: encode_prefix_payloads(c, bits, cells, context_model) for c in _coders(context_model)}
        return {
            k: self._packed(
                stream.geometry,
                stream.model_version,
                bits.shape[-1],
                np.minimum(stream.patch_iterations, k),
                {c: payloads[k - 1] for c, payloads in prefixes.items()},
                b"",
                _network_only(stream),
            )
            for k in steps
        }

    def compress(
        self, rgb: np.ndarray, target: Target, progress: Progress | None = None, keep_frames: bool = False
    ) -> CompressResult:
        """Compress uint8 [H,W,3] ``rgb`` to meet ``target`` in as few bytes as rate control finds.

        1. first pass: a uniform encode that reports every patch's quality after every iteration
           (stopping where a quality target is met);
        2. candidates: the best uniform count, and per-patch allocations from rate control
           (service/codec/rate_control.py), each decoded exactly as the receiver will;
        3. choice: the fewest bits meeting a quality (measured on the decoded image, with more
           iterations if it still falls short), or the most bits fitting a size;
        4. report: the bitstream and the quality the receiver sees.

        The target's kind decides each step (``service/codec/goals.py``). ``progress`` hears each
        step (and each backend call of the first pass) with the share done. With ``keep_frames``, decodes
        keep every iteration's image, so that the result carries the image after each step for the
        quality ladder (``CompressResult.frames``) without decoding the bitstream once more, and the result
        also carries the allocations a compress at each of ``ladder_msssims`` below it would choose:
        within a network bitstream's counts (decision 40), or coded beside a bitstream the layer made
        (``CompressResult.allocations_below``, decision 41).
        """
        start = time.perf_counter()
        self.client.reset_timing()
        version = self.current_version()
        geometry = Geometry(rgb.shape[1], rgb.shape[0], self.patch_size, self.tile_size)
        cost = geometry.cells_per_patch * self._channels(version)["bits"]  # raw bits per iteration
        run = CompressRun(self, rgb, geometry, version, cost, progress=progress, keep_frames=keep_frames)
        goal = goal_for(target)
        goal.first_pass(run)
        run.report_progress("choosing iterations per patch", FIRST_PASS_SHARE)
        candidates = goal.candidates(run)
        run.report_progress("checking the choice", 0.9)
        chosen, achieved = goal.choose(run, candidates)
        chosen, achieved = goal.refine(run, chosen, achieved)
        below: list[Allocation] = []
        if keep_frames and target.kind == "msssim" and run.uniform is not None:
            run.report_progress("finding the allocations of lower qualities", 0.92)
            lower = [value for value in self.ladder_msssims if value < achieved]
            # A bitstream with a layer holds no network bits to cut: its allocations are coded beside it.
            ceiling = None if chosen.refinement else chosen.counts
            below = [
                Allocation(value, c.counts, c.image, c.value, c.data)
                for value, c in allocations_below(run, lower, ceiling)
            ]
        run.report_progress("coding the bitstream", 0.95)
        return self._report(run, target, chosen, achieved, start, below)

    def _report(
        self,
        run: CompressRun,
        target: Target,
        chosen: Candidate,
        achieved: float,
        start: float,
        below: list[Allocation],
    ) -> CompressResult:
        """The chosen candidate's bitstream (coded now if it was not yet) and its measured quality."""
        reported = {target.kind: achieved}
        for kind, metric in MEASURES.items():
            if kind not in reported:
                reported[kind] = run.timed("metrics_seconds", metric, run.rgb, chosen.image)
        if chosen.data is None:
            chosen.data = run.coded(chosen.counts, chosen.refinement, chosen.layer_filtered)
        if run.keep_frames and not chosen.refinement:
            self._remember_bits(chosen.data, run.uniform.bits, run.geometry.cell_iterations(chosen.counts))
        reported["bpp"] = 8 * len(chosen.data) / run.pixels
        timings = {**run.timings, **self.client.timing(), "total_seconds": time.perf_counter() - start}
        return CompressResult(
            bitstream=chosen.data,
            reconstruction=chosen.image,
            msssim=reported["msssim"],
            psnr=reported["psnr"],
            bpp=reported["bpp"],
            iterations=int(chosen.counts.max()),
            ssimulacra2=reported["ssimulacra2"],
            patch_iterations=chosen.counts.astype(np.uint8),
            target=target,
            target_met=target.met_by(reported[target.kind]),
            model_name=self.model_name,
            model_version=run.version,
            timings=timings,
            refinement_bytes=len(chosen.refinement),
            coder=chosen.coder,
            coder_bytes=dict(run.coder_bytes),
            frames=self._layer_frames(run, chosen) if chosen.refinement else run.frames(chosen.counts),
            allocations_below=below,
        )

    def _remember_bits(self, data: bytes, bits: np.ndarray, cell_iterations: np.ndarray) -> None:
        """Keep what ``data``'s payload decodes to: ``bits`` with each cell cut to its count."""
        known = truncate(bits[: int(cell_iterations.max(initial=0))], cell_iterations)
        known.flags.writeable = False
        self._known_bits[data] = known
        while len(self._known_bits) > _KNOWN_BITSTREAMS:
            self._known_bits.popitem(last=False)

    def _layer_frames(self, run: CompressRun, chosen: Candidate) -> list[np.ndarray]:
        """The image after each step of a bitstream the layer made alone, as a progressive receiver shows
        them, with ``keep_frames``: the earlier steps decoded from the first pass's grey, the last the
        image compress measured (else empty: a layer over network iterations has no frames kept)."""
        if not run.keep_frames or chosen.counts.any():
            return []
        assert chosen.data is not None  # coded by _report
        stream = Bitstream.from_bytes(chosen.data)
        earlier = _layer_steps(stream, None)[:-1]
        return [*(self.refined(run.grey(), p, stream.layer_format) for p in earlier), chosen.image]

    # ------------------------------------------------------------------ decompress

    def refined(self, base: np.ndarray, payload: bytes, layer_format: int) -> np.ndarray:
        """``base`` refined by the layer's ``payload`` as the receiver shows it: restored by the filter
        version the payload names, if any (``ModelVersionNotServed`` where the backend does not serve it)."""
        image = refinement.decode(base, payload, layer_format)
        version, step = refinement.restoration_version(payload, layer_format)
        return self.restorer.restore(image, step, version) if version else image

    def _parse(
        self, data: bytes, iterations: int | None = None, cutting: bool = False
    ) -> tuple[Bitstream, np.ndarray, np.ndarray]:
        """Header checks, the backend serves its model version, then the payload's bits and each cell's
        count (cut to the first ``iterations``, as :meth:`truncations` would, without coding again).
        ``cutting`` (the ladder's cuts) takes the bits compress kept, if it kept ``data``'s; a decode
        decodes the payload as any receiver does."""
        stream = Bitstream.from_bytes(data)
        if stream.width * stream.height > self.max_pixels:
            raise InvalidBitstream(
                f"bitstream declares {stream.width}x{stream.height} pixels; this service decodes at most "
                f"{self.max_pixels}"
            )
        if int(stream.patch_iterations.max(initial=0)) > self.max_iterations:
            raise InvalidBitstream(f"bitstream asks for more than {self.max_iterations} iterations")
        if stream.model_name != self.model_name:
            raise InvalidBitstream(
                f"bitstream was made by model {stream.model_name!r}; this service serves {self.model_name!r}"
            )
        stream = self._served(stream)
        learned = stream.coder_id == CODER_LEARNED
        context_model = self.context_model(stream.model_version) if learned else None
        cell_iterations = stream.geometry.cell_iterations(stream.patch_iterations)
        bits = self._known_bits.get(data) if cutting else None
        if bits is None:
            bits = decode_payload(
                stream.coder_id, stream.payload, cell_iterations, stream.bits_per_cell, context_model
            )
        if iterations is not None:
            cell_iterations = np.minimum(cell_iterations, max(0, iterations))
            bits = truncate(bits[: max(1, iterations)], cell_iterations)
        return stream, bits, cell_iterations

    def _served(self, stream: Bitstream) -> Bitstream:
        """``stream`` as the backend decodes it: its model version, or the version that decodes it bit for
        bit where its own is no longer served (``EQUIVALENT_VERSIONS``); checks that model makes its bits."""
        version = stream.model_version
        available = self.client.available_versions(self.model_name)
        if version not in available and EQUIVALENT_VERSIONS.get(version) in available:
            stream = dataclasses.replace(stream, model_version=EQUIVALENT_VERSIONS[version])
            version = stream.model_version
        if version not in available:
            raise ModelVersionNotServed(
                f"this bitstream needs model {self.model_name!r} version {version}, which the backend does "
                "not serve; serve that version (model_version_policy) to decode it"
            )
        expected = self._channels(version)["bits"]
        if stream.bits_per_cell != expected:
            raise InvalidBitstream(
                f"bitstream has {stream.bits_per_cell} bits per cell; "
                f"model version {version} makes {expected}"
            )
        return stream

    def decompress(
        self, data: bytes, progress: Progress | None = None, iterations: int | None = None
    ) -> Decoded:
        """Decode a bitstream (its first ``iterations`` only, if given) to uint8 [H,W,3], with its header
        and where the time went; ``progress`` hears the share of the backend calls done."""
        start = time.perf_counter()
        self.client.reset_timing()
        stream, bits, cell_iterations = self._parse(data, iterations)
        parsed = time.perf_counter()
        image = self.decode_bits(
            stream.geometry, stream.model_version, bits, cell_iterations, progress, stream.postfilters
        )
        # entropy decoding with the header checks (a few ms)
        timings = {**self.client.timing(), "entropy_decoding_seconds": parsed - start}
        layer = _layer_steps(stream, iterations)
        if layer:
            layer_start = time.perf_counter()
            image = self.refined(image, layer[-1], stream.layer_format)
            timings["refinement_seconds"] = time.perf_counter() - layer_start
        timings["total_seconds"] = time.perf_counter() - start
        return Decoded(stream, image, timings)

    def _decoded_batches(
        self,
        geometry: Geometry,
        version: int,
        bits: np.ndarray,
        cell_iterations: np.ndarray,
        every_iteration: bool,
        progress: Progress | None = None,
    ) -> Iterator[tuple[list[Tile], np.ndarray]]:
        """One fused ``decompress`` call per batch of tiles that has iterations (no state through gRPC):
        each batch with its images after every iteration, [tiles, T, h, w, 3] (``every_iteration``), or
        its final images, [tiles, h, w, 3]; ``progress`` hears the share of the batches done."""
        batches = _batches(geometry.tiles(), cell_iterations)
        for done, (iterations, batch) in enumerate(batches, start=1):
            if progress is not None:
                progress("decoding", (done - 1) / len(batches))
            if iterations == 0:  # a tile with no iteration at all keeps the network's starting point
                continue
            tile_bits = np.stack([bits[:iterations, t.cell_slice[0], t.cell_slice[1]] for t in batch])
            output = "reconstructions" if every_iteration else "reconstruction"
            out = self.client.predict(self.model_name, version, "decompress", {"bits": tile_bits}, [output])
            yield batch, out[output]

    def decode_bits(
        self,
        geometry: Geometry,
        version: int,
        bits: np.ndarray,
        cell_iterations: np.ndarray,
        progress: Progress | None = None,
        filters: Postfilters = WRITTEN,
    ) -> np.ndarray:
        """The receiver's image, uint8 [H,W,3], from its bits, post-filtered as the bitstream's format says
        (``filters``; by default as the format compress writes now)."""
        image = grey_image(geometry.padded_height, geometry.padded_width)  # the network's starting point
        for batch, final in self._decoded_batches(geometry, version, bits, cell_iterations, False, progress):
            for i, tile in enumerate(batch):
                image[tile.pixel_slice] = final[i]
        image = np.ascontiguousarray(geometry.crop(image))
        return network_shown(image, filters)

    def _frames(
        self,
        geometry: Geometry,
        version: int,
        bits: np.ndarray,
        cell_iterations: np.ndarray,
        filters: Postfilters,
    ) -> _ShownFrames:
        """The receiver's image after each iteration, shown one at a time from the padded images the
        backend's calls gave (every iteration's at once: for images of a few megapixels)."""
        steps = int(cell_iterations.max(initial=0))
        padded = np.repeat(grey_image(geometry.padded_height, geometry.padded_width)[None], steps, axis=0)
        for batch, images in self._decoded_batches(geometry, version, bits, cell_iterations, True):
            for i, tile in enumerate(batch):
                _place(padded, images[i], tile.pixel_slice)
        return _ShownFrames(padded, geometry, filters)

    def decode_frames(
        self,
        geometry: Geometry,
        version: int,
        bits: np.ndarray,
        cell_iterations: np.ndarray,
        filters: Postfilters = WRITTEN,
    ) -> Sequence[np.ndarray]:
        """The receiver's image after each iteration, uint8 [H,W,3] each (what the first k iterations of
        these bits decode to), from one fused ``decompress`` call per batch of tiles; each post-filtered
        when first asked for (compress keeps every decode's frames and uses one decode's)."""
        return self._frames(geometry, version, bits, cell_iterations, filters)

    def step_images(self, data: bytes) -> Iterator[np.ndarray]:
        """The image after each of ``data``'s steps, as a progressive receiver shows them (each is what
        the prefix of that many steps decodes to)."""
        return self.decompress_progressive(data)[1]

    def decompress_progressive(
        self, data: bytes, iterations: int | None = None
    ) -> tuple[Bitstream, Iterator[np.ndarray]]:
        """Validate now, then return the header and an iterator of the image after each step (up to
        ``iterations``), so that errors surface before streaming."""
        stream, bits, cell_iterations = self._parse(data, iterations)
        return stream, self._step_images(stream, bits, cell_iterations, _layer_steps(stream, iterations))

    def _step_images(
        self, stream: Bitstream, bits: np.ndarray, cell_iterations: np.ndarray, layer: list[bytes]
    ) -> Iterator[np.ndarray]:
        """The network's frames (as :meth:`decode_frames`: the fused ``decompress`` call whose final image
        ``decompress`` shows, so that the last frame is exactly that image; decision 42), then the
        refinement layer's ``layer`` steps over the last."""
        geometry = stream.geometry
        last = grey_image(geometry.height, geometry.width)
        for last in self._frames(geometry, stream.model_version, bits, cell_iterations, stream.postfilters):
            yield last
        for payload in layer:
            yield self.refined(last, payload, stream.layer_format)
