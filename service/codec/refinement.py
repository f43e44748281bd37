"""The refinement layer: the residual the network leaves, coded with an 8×8 DCT (docs/decisions.md 28-31).

The recurrent network stops gaining past MS-SSIM ~0.97 on busy photos (each late iteration adds
0.1-0.3 dB for 0.125 bpp); a transform coder spends its bits on that noise-like residual better.
The layer codes ``original − base`` (``base``: what the receiver decodes from the network's bits)
in YCbCr, each 8×8 block's DCT coefficients divided by ``step`` × a weight growing with frequency
(chroma ×1.25; for MS-SSIM targets the mean of each block, its DC, at about half the step) and
rounded, the AC coefficients with a small dead zone. The receiver adds the decoded residual to its own
base image, rounds, and smooths block edges where they are quantisation steps (a deblocking filter in
integers), so encoder and decoder compute the same pixels. Where a block's first-order (ramp)
coefficient was coded as zero, the receiver puts in the ramp its neighbours' means show instead,
within what zero stands for (format 6): gradients come out as ramps, not 8×8 steps. Past step 48 the
means' step grows no further (format 7), so that a coarse layer keeps smooth areas' colours; and for
MS-SSIM targets each 32×32 region's steps are scaled by a level the payload carries (format 7's adaptive
quantiser): coarser where the picture is busy, finer where it is smooth. From format 8 the receiver runs
the luma-guided chroma filter on the layer's image (service/codec/postfilters.py).

Payload: ``step × 64`` u16 big-endian | (formats 6, 7) the mode, u8: bit 0 the block means at a finer step
than the AC's, bit 1 (format 7) the adaptive quantiser's region levels, bit 2 (format 7) the coefficient
coder's counts starting from trained tables | (format 7) the length of the first
stream, u32 | the coefficients, coded by ``coefficient_coder`` (bitstream formats 5-7: in format 7 two
streams, the levels and block means, then the rest: a receiver shows the first as a step of its own) or, in
format 4 streams, as
a raw LZMA2 stream of zigzag-mapped u16 planes (low bytes, then high bytes) ordered channel, band (row,
column within the block), block. The formats differ in their steps and in what the receiver does
(:data:`_LAYOUTS`).
"""

from __future__ import annotations

import dataclasses
import lzma
import struct
from dataclasses import dataclass

import numpy as np

from service.codec import coefficient_coder
from service.codec.deblocking import deblock
from service.codec.postfilters import filter_chroma
from service.errors import InvalidBitstream

__all__ = [
    "FORMAT",
    "MAX_STEP",
    "MIN_STEP",
    "MODES",
    "ResidualTransform",
    "Trial",
    "decode",
    "encode",
    "first_step",
    "restoration_version",
    "steps",
]

#: The bitstream format whose layer ``encode`` writes, and the one it writes under a network image that is not
#: chroma-filtered (the same payload, decoded without the filter).
FORMAT = 8
_UNFILTERED_FORMAT = 7

BLOCK = 8
MIN_STEP = 0.5
MAX_STEP = 1000.0
_STEP_SCALE = 64
_CHROMA_STEP = 1.25
#: Each block's mean (DC) in units of the step, Y and chroma (the finer means of formats 6 and 7): at the AC's
#: step, the means of smooth blocks came out off by visible steps (ΔE*ab over 2.3 between neighbouring smooth
#: patches: 279 on Kodak at MS-SSIM 0.95, 7 with these) and compress rejected the layer there (decision 30).
_LUMA_DC, _CHROMA_DC = 0.5, 0.45
#: AC magnitudes within this much above a half step round down: fewer bytes for the same quality
#: (the search measures what the receiver decodes, so this is the encoder's choice alone). Not the
#: DC: rounding means towards zero shifts a gradient's blocks by different amounts.
_DEAD_ZONE = 0.15
#: For MS-SSIM targets the dead zone rises with the band's frequency, from none next to the DC to this
#: at the highest: a coarser step that keeps the low bands meets MS-SSIM in fewer bytes (decision 53).
_RISING_DEAD_ZONE = 0.3
_LIMIT = 1 << 15
#: block rows per band of the transform (256 pixel rows: a 6000-px-wide band's float32 temporaries take
#: about 18 MB each, and a trial of a 24 MP photo about 150 MB of them at once)
_STRIP_BLOCKS = 32
#: The deblocking filter's thresholds in units of the step (edge step, flatness, largest change):
#: on Kodak 1-8 % fewer bytes for the same MS-SSIM or PSNR, and fewer visible blocks (decision 29)
_DEBLOCK = (1.5, 0.4, 0.3)
#: how bitstream format 4 coded the coefficients (decoded, no longer written)
_FILTERS = [{"id": lzma.FILTER_LZMA2, "preset": 9 | lzma.PRESET_EXTREME}]
# float32 throughout: a 24 Mpx photo's coefficients take 290 MB (580 MB in float64)
_RGB_TO_YCC = np.array([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]])
_YCC_TO_RGB = np.linalg.inv(_RGB_TO_YCC).astype(np.float32)
_RGB_TO_YCC = _RGB_TO_YCC.astype(np.float32)


def _dct_matrix() -> np.ndarray:
    k = np.arange(BLOCK)
    m = np.cos(np.pi * (2 * k[None] + 1) * k[:, None] / (2 * BLOCK)) * np.sqrt(2 / BLOCK)
    m[0] /= np.sqrt(2)
    return m.astype(np.float32)


_DCT = _dct_matrix()


def _band_weights(chroma: float, dc: tuple[float, float] | None = None, slope: float = 0.25) -> np.ndarray:
    """Quantiser step per channel and band [3, 8, 8], in units of ``step``: 1 + ``slope`` · (u + v), times
    ``chroma`` in chroma; ``dc``: the DC's (Y, chroma) instead."""
    fy, fx = np.meshgrid(np.arange(BLOCK), np.arange(BLOCK), indexing="ij")
    weights = (1 + slope * (fy + fx))[None] * np.array([1.0, chroma, chroma])[:, None, None]
    if dc is not None:
        weights[:, 0, 0] = [dc[0], dc[1], dc[1]]
    return weights.astype(np.float32)


@dataclass(frozen=True)
class _Layout:
    """How one bitstream format's layer is quantised and reconstructed."""

    weights: np.ndarray  # step per channel and band, in units of the step [3, 8, 8]
    deblock: bool  # the deblocking filter on block edges
    ramps: bool  # zero first-order coefficients predicted from the neighbouring blocks' means
    #: the step past which the block means' step grows no further (format 7)
    means_from: float = MAX_STEP
    #: each 32×32 region's steps scaled by its level (format 7), coarser where the picture is busy
    adaptive: bool = False
    #: the luma-guided chroma filter on the image (format 8)
    chroma_filter: bool = False

    def steps(self, step: float) -> np.ndarray:
        """The quantiser step per channel and band [3, 8, 8] at ``step``."""
        steps = np.float32(step) * self.weights
        steps[:, 0, 0] = np.float32(min(step, self.means_from)) * self.weights[:, 0, 0]
        return steps


#: The layer of each bitstream format, by the mode byte of its payload (formats 6 and 7; bit 0: the block
#: means at a finer step than the AC's, which costs PSNR targets 3.5-4.6 % more bytes; bit 1, format 7: the
#: adaptive quantiser, which costs PSNR what it saves MS-SSIM). 4: chroma ×2, coefficients LZMA-coded;
#: 5: chroma ×1.25, deblocking; 6: ramps; 7 (written now): the means' step grows no further past step 48,
#: so coarse steps keep smooth areas' colours, and the adaptive quantiser (decision 31); 8 (written now):
#: format 7's, the image chroma-filtered (decision 43).
_LAYOUTS: dict[int, dict[int, _Layout]] = {
    4: {0: _Layout(_band_weights(2.0), deblock=False, ramps=False)},
    5: {0: _Layout(_band_weights(_CHROMA_STEP), deblock=True, ramps=False)},
    6: {
        0: _Layout(_band_weights(_CHROMA_STEP), deblock=True, ramps=True),
        1: _Layout(_band_weights(_CHROMA_STEP, (_LUMA_DC, _CHROMA_DC)), deblock=True, ramps=True),
    },
}
_LAYOUTS[7] = {
    mode: dataclasses.replace(_LAYOUTS[6][mode & 1], means_from=48.0, adaptive=bool(mode & 2))
    for mode in range(4)
}
#: Mode bit 3 (formats 7 and 8, written from session 30): the perceptual weights, for SSIMULACRA 2 targets.
#: Steps rise twice as fast with frequency, chroma's are 2.5 times luma's, its block means 1.5 times:
#: SSIMULACRA 2 weighs coarse-scale luma structure and forgives fine detail and chroma more than MS-SSIM
#: does. With the adaptive quantiser and the rising dead zone, the layer alone on 10 training photos
#: 16.2 % fewer bytes at score 30 and 11.2 % at 70 than with mode 0's weights (decision 61).
_PERCEPTUAL = 8
_PERCEPTUAL_WEIGHTS = _band_weights(2.5, (1.0, 1.5), slope=0.5)
_LAYOUTS[7].update(
    {
        _PERCEPTUAL | mode: dataclasses.replace(_LAYOUTS[7][mode], weights=_PERCEPTUAL_WEIGHTS)
        for mode in (0, 2)
    }
)
_LAYOUTS[8] = {mode: dataclasses.replace(layout, chroma_filter=True) for mode, layout in _LAYOUTS[7].items()}
#: From format 7 the payload is two steps (the coefficient coder's two streams): step u16 | mode u8 |
#: the first stream's length u32 | the levels and block means | the rest.
_TWO_STEPS_FROM = 7
_FORMAT_7_HEADER = 7
#: The payload's header bytes in each format: the step, then the mode byte (6-8), then the first
#: stream's length (7, 8).
_HEADER_BYTES = {4: 2, 5: 2, 6: 3, 7: _FORMAT_7_HEADER, 8: _FORMAT_7_HEADER}
#: The mode the encoder writes for each kind of target: PSNR (mode 0), MS-SSIM (finer means, adaptive
#: quantiser) and SSIMULACRA 2 (the perceptual weights, adaptive quantiser).
_FOR_PSNR, _FOR_MSSSIM, _FOR_SSIMULACRA2 = 0, 3, _PERCEPTUAL | 2
MODES = {"psnr": _FOR_PSNR, "msssim": _FOR_MSSSIM, "ssimulacra2": _FOR_SSIMULACRA2}


def _dead_zone(rising: bool) -> np.ndarray:
    """The dead zone of each band [8, 8], in units of its step: ``_DEAD_ZONE`` throughout, or
    (``rising``) growing linearly with u + v to ``_RISING_DEAD_ZONE``; none for the DC."""
    fy, fx = np.meshgrid(np.arange(BLOCK), np.arange(BLOCK), indexing="ij")
    zone = _RISING_DEAD_ZONE * (fy + fx) / (2 * BLOCK - 2) if rising else np.full((BLOCK, BLOCK), _DEAD_ZONE)
    zone[0, 0] = 0.0
    return zone.astype(np.float32)


#: The dead zone per encoder mode: rising for MS-SSIM targets (the layer alone on Kodak and the validation
#: split 1.1 / 2.9 / 3.2 % fewer bytes at MS-SSIM 0.90 / 0.95 / 0.98), flat for PSNR targets (rising, it
#: cost 1.0 % at PSNR 35).
_DEAD_ZONES = {
    _FOR_PSNR: _dead_zone(False),
    _FOR_MSSSIM: _dead_zone(True),
    _FOR_SSIMULACRA2: _dead_zone(True),
}
#: Mode bit 2 (formats 7 and 8; written from session 25): the coefficient coder's counts start from the
#: tables fitted on the training split (``coefficient_counts``), not from ½: 7 % fewer bytes for the layer
#: alone at MS-SSIM 0.95 on Kodak and the validation split (decision 51). Bits 0 and 1 choose the layout.
_TRAINED_COUNTS = 4
#: Mode bits 4-7 (formats 7 and 8; written from session 30): the version of the restoration filter
#: (``models/restoration``) the receiver runs on the layer's image, 0 for none.
_RESTORATION_SHIFT = 4
#: The adaptive quantiser: blocks per region side (32 pixels), and region levels k within ±4, scaling the
#: region's steps by 2^(k/4); the encoder sets k = 4 · 0.2 · (log2 of the region's luma variance
#: (+ ``_ACTIVITY_FLOOR``) − its mean over the image), rounded: MS-SSIM forgives busy regions more error,
#: and smooth ones get finer steps (the layer alone at MS-SSIM 0.95 on Kodak 2.7 % fewer bytes, the levels
#: included; decision 31).
_REGION_BLOCKS = 4
_MAX_LEVEL = 4
_LEVEL_SCALES = np.exp2(np.arange(-_MAX_LEVEL, _MAX_LEVEL + 1) / 4).astype(np.float32)
_ACTIVITY_SLOPE = 0.2
#: The variance below which regions count as alike smooth (an encoder choice: the levels travel in the
#: payload). 100 rather than 4: the layer alone 1.4 / 0.8 / 0.2 % fewer bytes at MS-SSIM 0.90 / 0.95 /
#: 0.98, and its edges more faithful (decision 54).
_ACTIVITY_FLOOR = 100.0
#: A zero coefficient stands for magnitudes below this many of its steps (0.5 + the encoder's dead
#: zone when format 6 was defined): a predicted ramp stays within it, so it never contradicts the code.
_ZERO_BIN = 0.65
#: The first-order DCT coefficient of an 8×8 block rising by 1 per pixel along its row (or column).
_RAMP = float((_DCT @ np.tile(np.arange(BLOCK) - (BLOCK - 1) / 2, (BLOCK, 1)) @ _DCT.T)[0, 1])


def _blocks(height: int, width: int) -> tuple[int, int]:
    return -(-height // BLOCK), -(-width // BLOCK)


@dataclass
class Trial:
    """The layer at one quantiser step: its integers and the image the receiver decodes from them."""

    step: float
    quantised: np.ndarray  # int16 [3, by, bx, 8, 8] (int32 or int64 where decoded)
    image: np.ndarray  # uint8 [H,W,3]
    mode: int  # the layout (the mode byte)
    levels: np.ndarray | None  # the adaptive quantiser's region levels [ry, rx], if the mode has them
    #: the restoration filter's version the receiver applies to the layer's image (0: none), and
    #: ``image`` is then what it shows
    restoration: int = 0


@dataclass
class ResidualTransform:
    """The DCT coefficients of ``original − base`` [3, by, bx, 8, 8]: computed once, quantised at many
    steps while rate control searches for the step that meets a target."""

    base: np.ndarray  # uint8 [H,W,3]
    coefficients: np.ndarray
    mode: int = _FOR_MSSSIM
    levels: np.ndarray | None = None  # the adaptive quantiser's, where the mode has it
    #: the layer format whose reconstruction the trials show (the payload is the same for 7 and 8)
    layer_format: int = FORMAT

    @classmethod
    def of(
        cls, original: np.ndarray, base: np.ndarray, aim: str = "msssim", chroma_filter: bool = True
    ) -> ResidualTransform:
        """The transform of what ``base`` leaves of ``original`` (both uint8 [H,W,3]), to be quantised
        for a target of kind ``aim`` (``MODES``: for MS-SSIM finer block means and steps adapted to each
        region, for SSIMULACRA 2 the perceptual weights and adapted steps); its trials' images
        chroma-filtered (layer format 8) or not (format 7, under a bitstream whose network image is not
        filtered either)."""
        height, width = original.shape[:2]
        by, bx = _blocks(height, width)
        coefficients = np.empty((3, by, bx, BLOCK, BLOCK), np.float32)
        for rows, pixels in _strips(height):
            residual = (original[pixels].astype(np.float32) - base[pixels]) @ _RGB_TO_YCC.T
            pad = ((0, (rows.stop - rows.start) * BLOCK - len(residual)), (0, bx * BLOCK - width), (0, 0))
            blocks = (
                np.pad(residual, pad, mode="edge").reshape(-1, BLOCK, bx, BLOCK, 3).transpose(4, 0, 2, 1, 3)
            )
            coefficients[:, rows] = _DCT @ blocks @ _DCT.T
        mode = MODES[aim]
        levels = _region_levels(original) if _LAYOUTS[FORMAT][mode].adaptive else None
        return cls(base, coefficients, mode, levels, FORMAT if chroma_filter else _UNFILTERED_FORMAT)

    def trial(self, step: float) -> Trial:
        """The layer at ``step`` (rounded to what the payload can carry)."""
        step = _carried(step)
        layout = _LAYOUTS[self.layer_format][self.mode]
        steps = layout.steps(step)[:, None, None]
        scales = _block_scales(self.levels, *self.coefficients.shape[1:3])
        # |levels| stay below 8·255 / (0.225 · 0.5) ≈ 18,000 (a block's DC over the finest step and the
        # smallest region scale), so int16 holds them at half int32's memory (a 24 MP trial's: 144 MB);
        # the payload's limit is int16's, checked on each band before the cast
        quantised = np.empty(self.coefficients.shape, np.int16)
        dead_zone = _DEAD_ZONES[self.mode]
        for rows, _ in _strips(self.base.shape[0]):
            scaled = self.coefficients[:, rows] / (steps * scales[rows, :, None, None])
            rounded = np.floor(np.abs(scaled) + (np.float32(0.5) - dead_zone))
            if rounded.max(initial=0) >= _LIMIT:
                raise ValueError("refinement step too small for this residual")
            quantised[:, rows] = np.sign(scaled) * rounded
        image = _reconstruct(self.base, quantised, step, layout, scales)
        return Trial(step, quantised, image, self.mode, self.levels)


def _region_levels(original: np.ndarray) -> np.ndarray:
    """The adaptive quantiser's level of each 32×32 region of ``original`` (uint8 [H,W,3]; int64
    [ry, rx]): 4 · 0.2 · (log2 of its luma variance + ``_ACTIVITY_FLOOR``, − that mean over the image),
    rounded."""
    height, width = original.shape[:2]
    side = _REGION_BLOCKS * BLOCK
    ry, rx = -(-height // side), -(-width // side)
    variance = np.empty((ry, rx), np.float64)
    band = 32  # regions per band of rows: 1024 pixel rows at a time
    for top in range(0, ry, band):
        luma = original[top * side : (top + band) * side].astype(np.float32) @ _RGB_TO_YCC[0]
        n = -(-len(luma) // side)
        luma = np.pad(luma, ((0, n * side - len(luma)), (0, rx * side - width)), mode="edge")
        variance[top : top + n] = luma.reshape(n, side, rx, side).var(axis=(1, 3))
    logs = np.log2(variance + _ACTIVITY_FLOOR)
    levels = np.round(4 * _ACTIVITY_SLOPE * (logs - logs.mean()))
    return np.clip(levels, -_MAX_LEVEL, _MAX_LEVEL).astype(np.int64)


def _block_scales(levels: np.ndarray | None, blocks_y: int, blocks_x: int) -> np.ndarray:
    """Each block's step scale (float32 [blocks_y, blocks_x]) from its region's level (1 without levels)."""
    if levels is None:
        return np.ones((blocks_y, blocks_x), np.float32)
    scales = _LEVEL_SCALES[levels + _MAX_LEVEL]
    return np.repeat(np.repeat(scales, _REGION_BLOCKS, 0), _REGION_BLOCKS, 1)[:blocks_y, :blocks_x]


def _strips(height: int) -> list[tuple[slice, slice]]:
    """(block rows, pixel rows) of the bands the layer works on one at a time: a 24 Mpx photo's
    float32 temporaries would take gigabytes at once."""
    blocks_y = -(-height // BLOCK)
    return [
        (
            slice(top, min(blocks_y, top + _STRIP_BLOCKS)),
            slice(top * BLOCK, min(height, (top + _STRIP_BLOCKS) * BLOCK)),
        )
        for top in range(0, blocks_y, _STRIP_BLOCKS)
    ]


def _carried(step: float) -> float:
    """``step`` as the payload carries it (a multiple of 1/64 within the limits)."""
    return round(float(np.clip(step, MIN_STEP, MAX_STEP)) * _STEP_SCALE) / _STEP_SCALE


def _reconstruct(
    base: np.ndarray, quantised: np.ndarray, step: float, layout: _Layout, scales: np.ndarray | None = None
) -> np.ndarray:
    height, width = base.shape[:2]
    bx = quantised.shape[2]
    steps = layout.steps(step)[:, None, None]
    if scales is None:
        scales = _block_scales(None, *quantised.shape[1:3])
    slopes = _ramp_slopes(quantised[..., 0, 0] * steps[..., 0, 0] * scales) if layout.ramps else None
    image = np.empty(base.shape, np.int16)
    for rows, pixels in _strips(height):
        coefficients = quantised[:, rows].astype(np.float32) * (steps * scales[rows, :, None, None])
        if slopes is not None:
            for (u, v), slope in zip(((0, 1), (1, 0)), slopes, strict=True):
                limit = np.float32(_ZERO_BIN * step) * layout.weights[:, u, v, None, None] * scales[rows]
                ramp = np.clip(np.float32(_RAMP) * slope[:, rows], -limit, limit)
                coded = quantised[:, rows, :, u, v]
                coefficients[..., u, v] = np.where(coded == 0, ramp, coefficients[..., u, v])
        blocks = _DCT.T @ coefficients @ _DCT
        residual = blocks.transpose(1, 3, 2, 4, 0).reshape(-1, bx * BLOCK, 3)[
            : pixels.stop - pixels.start, :width
        ]
        image[pixels] = np.clip(np.round(base[pixels] + residual @ _YCC_TO_RGB.T), 0, 255)
    if layout.deblock:
        deblock(image, *(int(np.ceil(step * share)) for share in _DEBLOCK))
    image = np.clip(image, 0, 255, out=image).astype(np.uint8)
    return filter_chroma(image) if layout.chroma_filter else image


def _ramp_slopes(means: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per block, the slope (per pixel, along rows and along columns) its neighbours' DC coefficients
    ``means`` [3, by, bx] show: the smaller of the two one-sided differences where they agree in sign,
    else none (a minmod limiter: no ramp at an extremum or across an edge)."""
    padded = np.pad(means.astype(np.float32), ((0, 0), (1, 1), (1, 1)), mode="edge")
    centre = padded[:, 1:-1, 1:-1]
    slopes = []
    for before, after in (
        (padded[:, 1:-1, :-2], padded[:, 1:-1, 2:]),
        (padded[:, :-2, 1:-1], padded[:, 2:, 1:-1]),
    ):
        left, right = centre - before, after - centre
        agree = left * right > 0
        # a DC coefficient is 8 × the block's mean, and neighbouring blocks' centres are 8 pixels apart
        slopes.append(np.where(agree, np.sign(left) * np.minimum(np.abs(left), np.abs(right)), 0) / 64)
    return slopes[0], slopes[1]


def encode(trial: Trial) -> bytes:
    """The refinement payload of ``trial`` (bitstream format :data:`FORMAT`)."""
    means, rest = coefficient_coder.encode(trial.quantised, trial.levels, trained=True)
    mode = trial.mode | _TRAINED_COUNTS | trial.restoration << _RESTORATION_SHIFT
    return struct.pack(">HBI", round(trial.step * _STEP_SCALE), mode, len(means)) + means + rest


def restoration_version(payload: bytes, format_version: int) -> tuple[int, float]:
    """The restoration filter's version a receiver applies to the image ``payload`` decodes to (mode bits
    4-7, formats 7 and 8; 0: none), and the layer's step, which the filter is told."""
    if format_version < _TWO_STEPS_FROM or len(payload) < 3:
        return 0, 0.0
    return payload[2] >> _RESTORATION_SHIFT, struct.unpack(">H", payload[:2])[0] / _STEP_SCALE


def steps(payload: bytes, format_version: int) -> int:
    """The steps a progressive receiver shows of the layer: in format 7 the block means (with their
    ramps), then the rest, unless ``payload`` was cut to its means; one before."""
    if format_version < _TWO_STEPS_FROM or len(payload) < _FORMAT_7_HEADER:
        return 1
    return 2 if len(payload) > _FORMAT_7_HEADER + _first_stream_length(payload) else 1


def first_step(payload: bytes) -> bytes:
    """A format-7 ``payload`` cut to its first step: the adaptive quantiser's levels and the block means
    (a valid payload of one step, decoding to the means and their ramps)."""
    return payload[: _FORMAT_7_HEADER + _first_stream_length(payload)]


def _first_stream_length(payload: bytes) -> int:
    """The length a format-7 header gives its first stream (the levels and block means)."""
    return struct.unpack(">I", payload[3:_FORMAT_7_HEADER])[0]


def decode(base: np.ndarray, payload: bytes, format_version: int) -> np.ndarray:
    """``base`` (uint8 [H,W,3], the network's image) refined by ``payload`` as the
    layer format ``format_version`` (4-8) codes it; raises ``InvalidBitstream``."""
    if format_version not in _LAYOUTS:
        raise InvalidBitstream(f"bitstream format {format_version} carries no refinement layer")
    layouts = _LAYOUTS[format_version]
    header = _HEADER_BYTES[format_version]
    if len(payload) < header:
        raise InvalidBitstream("refinement payload truncated")
    (scaled,) = struct.unpack(">H", payload[:2])
    step = scaled / _STEP_SCALE
    if not MIN_STEP <= step <= MAX_STEP:
        raise InvalidBitstream(f"refinement step {step} out of range")
    mode = payload[2] if header > 2 else 0
    if format_version >= _TWO_STEPS_FROM:
        mode &= (1 << _RESTORATION_SHIFT) - 1  # the restoration filter's version: applied by the caller
    trained = format_version >= _TWO_STEPS_FROM and bool(mode & _TRAINED_COUNTS)
    layout_mode = mode & ~_TRAINED_COUNTS if trained else mode
    if layout_mode not in layouts:
        raise InvalidBitstream(f"refinement mode {mode} not defined")
    layout = layouts[layout_mode]
    by, bx = _blocks(*base.shape[:2])
    levels = None
    if format_version == 4:
        quantised = _lzma_planes(payload[header:], by, bx)
    elif format_version < _TWO_STEPS_FROM:
        quantised = coefficient_coder.decode_one_stream(payload[header:], by, bx)
    else:
        means = _first_stream_length(payload)
        if len(payload) < header + means:
            raise InvalidBitstream("refinement payload truncated")
        rest = payload[header + means :] or None  # none: cut to its first step
        regions = (-(-by // _REGION_BLOCKS), -(-bx // _REGION_BLOCKS)) if layout.adaptive else None
        quantised, levels = coefficient_coder.decode(
            payload[header : header + means], rest, by, bx, regions, trained
        )
    if np.abs(quantised).max(initial=0) >= _LIMIT:
        raise InvalidBitstream("refinement coefficient out of range")
    if levels is not None and np.abs(levels).max(initial=0) > _MAX_LEVEL:
        raise InvalidBitstream("refinement quantiser level out of range")
    return _reconstruct(base, quantised, step, layout, _block_scales(levels, by, bx))


def _lzma_planes(data: bytes, by: int, bx: int) -> np.ndarray:
    count = 3 * BLOCK * BLOCK * by * bx
    decompressor = lzma.LZMADecompressor(format=lzma.FORMAT_RAW, filters=_FILTERS)
    try:
        planes = decompressor.decompress(data, max_length=2 * count + 1)
    except lzma.LZMAError as error:
        raise InvalidBitstream(f"refinement payload corrupt: {error}") from None
    if len(planes) != 2 * count:
        raise InvalidBitstream(f"refinement payload holds {len(planes)} bytes, the image needs {2 * count}")
    mapped = np.frombuffer(planes, np.uint8).reshape(2, count).T.copy().view("<u2").ravel().astype(np.int32)
    values = np.where(mapped & 1, -(mapped + 1) // 2, mapped // 2)
    return values.reshape(3, BLOCK, BLOCK, by, bx).transpose(0, 3, 4, 1, 2)
