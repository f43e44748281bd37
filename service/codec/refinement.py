"""The refinement layer: the residual the network leaves, coded with an 8×8 DCT (docs/decisions.md 28, 29).

The recurrent network stops gaining past MS-SSIM ~0.97 on busy photos (each late iteration adds
0.1-0.3 dB for 0.125 bpp); a transform coder spends its bits on that noise-like residual better.
The layer codes ``original − base`` (``base``: what the receiver decodes from the network's bits)
in YCbCr, each 8×8 block's DCT coefficients divided by ``step`` × a weight growing with frequency
(chroma ×2) and rounded with a small dead zone. The receiver adds the decoded residual to its own
base image and rounds, so encoder and decoder compute the same pixels.

Payload: ``step × 64`` u16 big-endian | the coefficients, coded by ``coefficient_coder`` (bitstream
format 5) or, in format 4 streams, as a raw LZMA2 stream of zigzag-mapped u16 planes (low bytes,
then high bytes) ordered channel, band (row, column within the block), block.
"""

from __future__ import annotations

import lzma
import struct
from dataclasses import dataclass

import numpy as np

from service.codec import coefficient_coder
from service.errors import InvalidBitstream

__all__ = ["MAX_STEP", "MIN_STEP", "ResidualTransform", "Trial", "decode", "encode"]

BLOCK = 8
MIN_STEP = 0.5
MAX_STEP = 1000.0
_STEP_SCALE = 64
_CHROMA_STEP = 2.0
#: magnitudes within this much above a half step round down: fewer bytes for the same quality
#: (the search measures what the receiver decodes, so this is the encoder's choice alone)
_DEAD_ZONE = 0.15
_LIMIT = 1 << 15
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
_fy, _fx = np.meshgrid(np.arange(BLOCK), np.arange(BLOCK), indexing="ij")
#: quantiser step per channel and band, in units of ``step``: coarser at high frequencies and in chroma
_WEIGHTS = (
    (1 + 0.25 * (_fy + _fx))[None] * np.array([1.0, _CHROMA_STEP, _CHROMA_STEP])[:, None, None]
).astype(np.float32)


def _blocks(height: int, width: int) -> tuple[int, int]:
    return -(-height // BLOCK), -(-width // BLOCK)


@dataclass
class Trial:
    """The layer at one quantiser step: its integers and the image the receiver decodes from them."""

    step: float
    quantised: np.ndarray  # int32 [3, by, bx, 8, 8]
    image: np.ndarray  # uint8 [H,W,3]


@dataclass
class ResidualTransform:
    """The DCT coefficients of ``original − base`` [3, by, bx, 8, 8]: computed once, quantised at many
    steps while rate control searches for the step that meets a target."""

    base: np.ndarray  # uint8 [H,W,3]
    coefficients: np.ndarray

    @classmethod
    def of(cls, original: np.ndarray, base: np.ndarray) -> ResidualTransform:
        """The transform of what ``base`` leaves of ``original`` (both uint8 [H,W,3])."""
        height, width = original.shape[:2]
        by, bx = _blocks(height, width)
        residual = (original.astype(np.float32) - base.astype(np.float32)) @ _RGB_TO_YCC.T
        residual = np.pad(residual, ((0, by * BLOCK - height), (0, bx * BLOCK - width), (0, 0)), mode="edge")
        blocks = residual.reshape(by, BLOCK, bx, BLOCK, 3).transpose(4, 0, 2, 1, 3)
        return cls(base, _DCT @ blocks @ _DCT.T)

    def trial(self, step: float) -> Trial:
        """The layer at ``step`` (rounded to what the payload can carry)."""
        step = _carried(step)
        scaled = self.coefficients / (np.float32(step) * _WEIGHTS[:, None, None])
        rounded = np.floor(np.abs(scaled) + np.float32(0.5 - _DEAD_ZONE))
        quantised = (np.sign(scaled) * rounded).astype(np.int32)
        return Trial(step, quantised, _reconstruct(self.base, quantised, step))


def _carried(step: float) -> float:
    """``step`` as the payload carries it (a multiple of 1/64 within the limits)."""
    return round(float(np.clip(step, MIN_STEP, MAX_STEP)) * _STEP_SCALE) / _STEP_SCALE


def _reconstruct(base: np.ndarray, quantised: np.ndarray, step: float) -> np.ndarray:
    height, width = base.shape[:2]
    by, bx = _blocks(height, width)
    blocks = _DCT.T @ (quantised.astype(np.float32) * (np.float32(step) * _WEIGHTS[:, None, None])) @ _DCT
    residual = blocks.transpose(1, 3, 2, 4, 0).reshape(by * BLOCK, bx * BLOCK, 3)[:height, :width]
    return np.clip(np.round(base + residual @ _YCC_TO_RGB.T), 0, 255).astype(np.uint8)


def encode(trial: Trial) -> bytes:
    """The refinement payload of ``trial``."""
    if np.abs(trial.quantised).max(initial=0) >= _LIMIT:
        raise ValueError("refinement step too small for this residual")
    return struct.pack(">H", round(trial.step * _STEP_SCALE)) + coefficient_coder.encode(trial.quantised)


def decode(base: np.ndarray, payload: bytes, lzma_planes: bool = False) -> np.ndarray:
    """``base`` (uint8 [H,W,3], the network's image) refined by ``payload`` (``lzma_planes``: as
    bitstream format 4 wrote it); raises ``InvalidBitstream``."""
    if len(payload) < 2:
        raise InvalidBitstream("refinement payload truncated")
    (scaled,) = struct.unpack(">H", payload[:2])
    step = scaled / _STEP_SCALE
    if not MIN_STEP <= step <= MAX_STEP:
        raise InvalidBitstream(f"refinement step {step} out of range")
    by, bx = _blocks(*base.shape[:2])
    if lzma_planes:
        quantised = _lzma_planes(payload[2:], by, bx)
    else:
        quantised = coefficient_coder.decode(payload[2:], by, bx)
        if np.abs(quantised).max(initial=0) >= _LIMIT:
            raise InvalidBitstream("refinement coefficient out of range")
    return _reconstruct(base, quantised, step)


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
