"""The image codec as the gateway runs it: pad, tile, call the backend, choose iterations, write bits.

::

    compress:   RGB ─▶ pad ─▶ tiles ─▶ backend "compress" (bits + reconstruction per iteration)
                    ─▶ rate control on measured quality ─▶ bitstream (+ the receiver's reconstruction)
    decompress: bitstream ─▶ bits per tile ─▶ backend "decompress" ─▶ stitch ─▶ crop
    progressive: bitstream ─▶ backend "decode_step" per iteration, states carried ─▶ one image each

Compress decodes too, so the reported quality is the quality the receiver sees.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from service.backend.client import BackendClient
from service.codec.bitstream import Bitstream
from service.codec.entropy import CODER_CONTEXT, CODER_RAW, decode_payload, encode_payload
from service.codec.patches import Geometry, Tile
from service.codec.quality import msssim, msssim_batch, psnr, psnr_batch
from service.codec.rate_control import (
    Target,
    composite,
    local_quality,
    search_threshold,
)
from service.errors import BackendUnavailable, InvalidBitstream, ModelVersionNotServed

__all__ = ["CompressResult", "Decoded", "Encoding", "ImageCodec"]

#: Upper bound of pixels per backend call, so requests stay well inside gRPC message limits.
MAX_PIXELS_PER_CALL = 4_000_000
#: Quality targets try a per-patch allocation only when it is estimated at least this much smaller.
_MIN_SAVING = 0.03
#: A size target is hit when the bitstream is within this fraction of it (and not above).
_SIZE_TOLERANCE = 0.95
#: The model's reconstruction before any iteration (0.0 in [-0.5, 0.5]) as a pixel value.
_GREY = 128


@dataclass
class CompressResult:
    bitstream: bytes
    reconstruction: np.ndarray  # uint8 [H, W, 3]
    msssim: float
    psnr: float
    bpp: float
    iterations: int
    patch_iterations: np.ndarray
    target: Target
    target_met: bool
    model_name: str
    model_version: int
    timings: dict[str, float] = field(default_factory=dict)


@dataclass
class Encoding:
    """The backend's answer for one image: bits [N,cy,cx,C] and reconstructions [N,Hp,Wp,3] (padded)."""

    geometry: Geometry
    version: int
    bits: np.ndarray
    reconstructions: np.ndarray

    def reconstruction(self, iterations: int) -> np.ndarray:
        """The decoded image after ``iterations`` uniform iterations, uint8 [H,W,3] at the original size."""
        return np.ascontiguousarray(self.geometry.crop(self.reconstructions[iterations - 1]))


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


class ImageCodec:
    """Compress and decompress images with the model behind ``client``."""

    def __init__(
        self,
        client: BackendClient,
        model_name: str,
        model_version: int | None = None,
        patch_size: int = 64,
        tile_size: int = 1024,
        max_iterations: int = 16,
        first_pass_iterations: int = 8,
        max_pixels: int = 24_000_000,
    ) -> None:
        self.client = client
        self.model_name = model_name
        self.model_version = model_version
        self.patch_size, self.tile_size = patch_size, tile_size
        self.max_iterations = max_iterations
        self.first_pass_iterations = min(first_pass_iterations, max_iterations)
        self.max_pixels = max_pixels
        self._signature_channels: dict[int, dict[str, int]] = {}

    # ------------------------------------------------------------------ versions and metadata

    def current_version(self) -> int:
        """The version new bitstreams are made with: the configured one, else the newest served."""
        if self.model_version is not None:
            return self.model_version
        versions = self.client.available_versions(self.model_name)
        if not versions:
            raise BackendUnavailable(f"the backend serves no version of model {self.model_name!r}")
        return versions[-1]

    def _channels(self, version: int) -> dict[str, int]:
        """Channel counts from the model's signatures: ``bits`` and each ``dec_state_*``."""
        if version not in self._signature_channels:
            defs = self.client.signature_defs(self.model_name, version)
            inputs = defs["decode_step"].inputs
            self._signature_channels[version] = {
                name: inputs[name].tensor_shape.dim[-1].size
                for name in inputs
                if name == "bits" or name.startswith("dec_state_")
            }
        return self._signature_channels[version]

    # ------------------------------------------------------------------ compress

    def _encode(
        self, padded: np.ndarray, geometry: Geometry, version: int, cell_iterations: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Run ``compress`` on every tile; returns bits [N,cy,cx,C] and reconstructions [N,Hp,Wp,3]."""
        total = int(cell_iterations.max())
        cells_y, cells_x = geometry.cells
        bits = recon = None
        for _, batch in _batches(geometry.tiles(), cell_iterations):
            out = self.client.predict(
                self.model_name,
                version,
                "compress",
                {
                    "image": np.stack([padded[t.pixel_slice] for t in batch]),
                    "iterations": np.stack([cell_iterations[t.cell_slice] for t in batch]).astype(np.int32),
                },
            )
            if bits is None:
                channels = out["bits"].shape[-1]
                bits = np.zeros((total, cells_y, cells_x, channels), np.int8)
                recon = np.zeros((total, geometry.padded_height, geometry.padded_width, 3), np.uint8)
            for i, tile in enumerate(batch):
                tile_bits, tile_recon = out["bits"][i], out["reconstructions"][i]
                n = tile_bits.shape[0]
                bits[:n, tile.cell_slice[0], tile.cell_slice[1]] = tile_bits
                recon[:n, tile.pixel_slice[0], tile.pixel_slice[1]] = tile_recon
                # A tile that stops earlier than others keeps its last image, as the receiver does.
                recon[n:, tile.pixel_slice[0], tile.pixel_slice[1]] = tile_recon[-1]
        return bits, recon

    def encode(self, rgb: np.ndarray, iterations: int | np.ndarray, version: int | None = None) -> Encoding:
        """Encode uint8 [H,W,3] ``rgb`` with ``iterations`` per patch (one count for all, or an array
        [patches_y, patches_x]); returns the bits and the reconstruction after every iteration."""
        geometry = Geometry(rgb.shape[1], rgb.shape[0], self.patch_size, self.tile_size)
        version = self.current_version() if version is None else version
        counts = np.broadcast_to(np.asarray(iterations, np.int32), geometry.patches)
        bits, recon = self._encode(geometry.pad(rgb), geometry, version, geometry.cell_iterations(counts))
        return Encoding(geometry, version, bits, recon)

    def bitstream(
        self, encoding: Encoding, patch_iterations: np.ndarray, coder_id: int | None = None
    ) -> bytes:
        """The bitstream of ``encoding`` truncated to ``patch_iterations`` [patches_y, patches_x].

        By default the context coder, unless raw bits are smaller (never worse than raw).
        """
        geometry = encoding.geometry
        cell_iterations = geometry.cell_iterations(patch_iterations)
        total = int(cell_iterations.max(initial=0))
        bits = encoding.bits[:total]
        candidates = [coder_id] if coder_id is not None else [CODER_CONTEXT, CODER_RAW]
        payloads = {c: encode_payload(c, bits, cell_iterations) for c in candidates}
        chosen = min(payloads, key=lambda c: len(payloads[c]))
        return Bitstream(
            model_name=self.model_name,
            model_version=encoding.version,
            width=geometry.width,
            height=geometry.height,
            patch_size=geometry.patch_size,
            tile_size=geometry.tile_size,
            bits_per_cell=encoding.bits.shape[-1],
            patch_iterations=patch_iterations.astype(np.uint8),
            payload=payloads[chosen],
            coder_id=chosen,
        ).to_bytes()

    def compress(self, rgb: np.ndarray, target: Target) -> CompressResult:
        """Compress uint8 [H,W,3] ``rgb`` to meet ``target`` in as few bytes as rate control finds.

        A uniform encode shows every patch after every iteration; rate control chooses per-patch
        counts from it; an encode with those counts gives the bits and the exact image the receiver
        decodes, which is measured, and searched again with a corrected aim if it falls short. The
        best uniform count is always a candidate, so adaptive allocation never does worse.
        """
        start = time.perf_counter()
        self.client.reset_timing()
        timings: dict[str, float] = defaultdict(float)
        pixels = rgb.shape[0] * rgb.shape[1]
        version = self.current_version()

        def timed(key: str, function, *args):
            t0 = time.perf_counter()
            result = function(*args)
            timings[key] += time.perf_counter() - t0
            return result

        def quality(image: np.ndarray) -> float:
            return timed("metrics_seconds", psnr if target.kind == "psnr" else msssim, rgb, image)

        def coded_bpp(encoding: Encoding, counts: np.ndarray) -> float:
            return 8 * len(timed("entropy_coding_seconds", self.bitstream, encoding, counts)) / pixels

        if target.kind == "bpp":  # enough iterations for the size even if coding saved half the bits
            cells_y, cells_x = Geometry(rgb.shape[1], rgb.shape[0], self.patch_size, self.tile_size).cells
            raw_bits_per_iteration = cells_y * cells_x * self._channels(version)["bits"]
            needed = int(np.ceil(2 * target.value * pixels / raw_bits_per_iteration))
            available = int(np.clip(needed, 1, self.max_iterations))
        else:
            available = self.first_pass_iterations

        def encode_uniform(iterations: int) -> tuple[Encoding, np.ndarray, np.ndarray]:
            """The uniform run, its images after each iteration, and their quality (one batched call)."""
            encoding = timed("encode_seconds", self.encode, rgb, iterations, version)
            images = np.stack([encoding.reconstruction(n) for n in range(1, iterations + 1)])
            if target.kind == "bpp":
                return encoding, images, np.zeros(iterations)
            batch = psnr_batch if target.kind == "psnr" else msssim_batch
            return encoding, images, timed("metrics_seconds", batch, rgb, images)

        uniform, images, curve = encode_uniform(available)
        if target.kind != "bpp" and available < self.max_iterations and not target.met_by(curve[-1]):
            available = self.max_iterations
            uniform, images, curve = encode_uniform(available)
        geometry = uniform.geometry

        bits_per_cell = uniform.bits.shape[-1]
        cells_per_patch = geometry.cells_per_patch
        if target.kind == "bpp":  # coded bits / raw bits of the full uniform run, to size allocations
            full = coded_bpp(uniform, np.full(geometry.patches, available))
            coding_ratio = full * pixels / (available * cells_per_patch.sum() * bits_per_cell)

        def predicted(counts: np.ndarray) -> float:
            if target.kind == "bpp":  # raw bits scaled by the measured coding ratio; verified later
                return float((counts * cells_per_patch).sum()) * bits_per_cell * coding_ratio / pixels
            return quality(composite(images, counts, geometry))

        def candidate(counts: np.ndarray, encoding: Encoding, image: np.ndarray, value: float | None = None):
            data = timed("entropy_coding_seconds", self.bitstream, encoding, counts)
            if target.kind == "bpp":
                value = 8 * len(data) / pixels
            elif value is None:
                value = quality(image)
            return (not target.met_by(value), len(data)), counts, image, data, value

        # Candidate 1: the best uniform count (its image is exact: a prefix of the uniform run).
        if target.kind == "bpp":  # the most uniform iterations whose real size fits (bisection)
            low, high = 1, available
            while low < high:
                middle = (low + high + 1) // 2
                if coded_bpp(uniform, np.full(geometry.patches, middle)) <= target.value:
                    low = middle
                else:
                    high = middle - 1
            n_uniform = low
        else:  # the fewest that meet the target, or all of them
            meeting = [n for n in range(1, available + 1) if target.met_by(curve[n - 1])]
            n_uniform = meeting[0] if meeting else available
        uniform_counts = np.full(geometry.patches, n_uniform)
        candidates = [candidate(uniform_counts, uniform, images[n_uniform - 1], curve[n_uniform - 1])]

        # Candidate 2: adaptive allocation, verified on a real encode with the per-patch counts.
        table = timed("rate_control_seconds", local_quality, rgb, images, geometry, target.kind)
        aim = target.value
        for _ in range(3):
            # The aim is internal (it may leave the range a client may ask for), so no Target here.
            if target.kind == "bpp":
                acceptable = lambda c, aim=aim: predicted(c) <= aim  # noqa: E731
            else:
                acceptable = lambda c, aim=aim: predicted(c) >= aim  # noqa: E731
            counts = timed(
                "rate_control_seconds", search_threshold, table, acceptable, 6, target.kind != "bpp"
            )
            if counts is None or np.array_equal(counts, uniform_counts):
                break
            estimated_saving = 1 - (counts * cells_per_patch).sum() / (uniform_counts * cells_per_patch).sum()
            if target.kind != "bpp" and estimated_saving < _MIN_SAVING:
                break  # an encode that cannot pay for itself
            encoding = timed("encode_seconds", self.encode, rgb, counts, version)
            found = candidate(counts, encoding, encoding.reconstruction(int(counts.max())))
            candidates.append(found)
            (missed, _), _, _, _, measured = found
            close_enough = target.kind != "bpp" or measured >= _SIZE_TOLERANCE * target.value
            if (not missed and close_enough) or (target.kind == "bpp" and counts.min() == available):
                break  # done, or every patch already has every iteration: more aim cannot help
            aim = (
                aim * target.value / measured
                if target.kind == "bpp"
                else aim + 1.5 * (target.value - measured)
            )

        # Quality targets: the fewest bytes that meet it. Size targets: the most bytes that fit.
        sign = -1 if target.kind == "bpp" else 1
        _, counts, reconstruction, data, _ = min(candidates, key=lambda c: (c[0][0], sign * c[0][1]))
        achieved_msssim = timed("metrics_seconds", msssim, rgb, reconstruction)
        achieved_psnr = timed("metrics_seconds", psnr, rgb, reconstruction)
        bpp = 8 * len(data) / pixels
        achieved = {"bpp": bpp, "psnr": achieved_psnr, "msssim": achieved_msssim}[target.kind]
        timings.update(self.client.timing())
        timings["total_seconds"] = time.perf_counter() - start
        return CompressResult(
            bitstream=data,
            reconstruction=reconstruction,
            msssim=achieved_msssim,
            psnr=achieved_psnr,
            bpp=bpp,
            iterations=int(counts.max()),
            patch_iterations=counts.astype(np.uint8),
            target=target,
            target_met=target.met_by(achieved),
            model_name=self.model_name,
            model_version=version,
            timings=dict(timings),
        )

    # ------------------------------------------------------------------ decompress

    def _parse(self, data: bytes) -> tuple[Bitstream, np.ndarray, np.ndarray]:
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
        cell_iterations = stream.geometry.cell_iterations(stream.patch_iterations)
        bits = decode_payload(stream.coder_id, stream.payload, cell_iterations, stream.bits_per_cell)
        return stream, bits, cell_iterations

    def _check_served(self, stream: Bitstream) -> None:
        """The backend serves the bitstream's model version, and that model makes the bitstream's bits."""
        version = stream.model_version
        if version not in self.client.available_versions(self.model_name):
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

    def decompress(self, data: bytes) -> Decoded:
        """Decode a bitstream to uint8 [H,W,3], with its header and where the time went."""
        start = time.perf_counter()
        self.client.reset_timing()
        stream, bits, cell_iterations = self._parse(data)
        self._check_served(stream)
        geometry = stream.geometry
        # A tile with no iteration at all is the network's starting point: mid-grey.
        image = np.full((geometry.padded_height, geometry.padded_width, 3), _GREY, np.uint8)
        for iterations, batch in _batches(geometry.tiles(), cell_iterations):
            if iterations == 0:
                continue
            tile_bits = np.stack([bits[:iterations, t.cell_slice[0], t.cell_slice[1]] for t in batch])
            out = self.client.predict(
                self.model_name, stream.model_version, "decompress", {"bits": tile_bits}
            )
            for i, tile in enumerate(batch):
                image[tile.pixel_slice] = out["reconstructions"][i, -1]
        timings = {**self.client.timing(), "total_seconds": time.perf_counter() - start}
        return Decoded(stream, np.ascontiguousarray(geometry.crop(image)), timings)

    def decompress_progressive(self, data: bytes) -> tuple[Bitstream, Iterator[np.ndarray]]:
        """Validate now, then return the header and an iterator of the image after each iteration
        (decoded step by step with explicit states), so that errors surface before streaming."""
        stream, bits, cell_iterations = self._parse(data)
        self._check_served(stream)
        return stream, self._progressive_frames(stream, bits, cell_iterations)

    def _progressive_frames(
        self, stream: Bitstream, bits: np.ndarray, cell_iterations: np.ndarray
    ) -> Iterator[np.ndarray]:
        geometry = stream.geometry
        channels = {k: v for k, v in self._channels(stream.model_version).items() if k != "bits"}
        factors = {"dec_state_1": 16, "dec_state_2": 8, "dec_state_3": 4, "dec_state_4": 2}
        batches = _batches(geometry.tiles(), cell_iterations)
        states = []
        for _, batch in batches:
            b, h, w = len(batch), batch[0].height, batch[0].width
            state = {
                name: np.zeros((b, h // factors[name], w // factors[name], c), np.float32)
                for name, c in channels.items()
            }
            state["reconstruction"] = np.zeros((b, h, w, 3), np.float32)
            states.append(state)
        image = np.full((geometry.padded_height, geometry.padded_width, 3), _GREY, np.uint8)
        for t in range(bits.shape[0]):
            for (iterations, batch), state in zip(batches, states, strict=True):
                if t >= iterations:  # this tile is finished: it keeps its image
                    continue
                inputs = dict(state)
                inputs["bits"] = np.stack([bits[t, tile.cell_slice[0], tile.cell_slice[1]] for tile in batch])
                inputs["iteration"] = np.full(len(batch), t, np.int32)
                out = self.client.predict(self.model_name, stream.model_version, "decode_step", inputs)
                for name in state:
                    state[name] = out[name]
                for i, tile in enumerate(batch):
                    image[tile.pixel_slice] = out["image"][i]
            yield geometry.crop(image).copy()
