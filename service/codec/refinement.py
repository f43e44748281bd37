"""The refinement layer: the residual the network leaves, coded with an 8×8 DCT (docs/decisions.md 28).

The recurrent network stops gaining past MS-SSIM ~0.97 on busy photos (each late iteration adds
0.1-0.3 dB for 0.125 bpp); a transform coder spends its bits on that noise-like residual about as
well as JPEG does. The layer codes ``original − base`` (``base``: what the receiver decodes from the
network's bits) in YCbCr, each 8×8 block's DCT coefficients divided by ``step`` × a weight growing
with frequency (chroma ×2), rounded, and LZMA-compressed band by band. The receiver adds the decoded
residual to its own base image and rounds, so encoder and decoder compute the same pixels.

Payload: ``step × 64`` u16 big-endian | raw LZMA2 stream of the zigzag-mapped coefficients as u16
planes (low bytes, then high bytes), ordered channel, band (row, column within the block), block.
"""

from __future__ import annotations

import lzma
import struct
from dataclasses import dataclass

import numpy as np

from service.errors import InvalidBitstream

__all__ = ["MAX_STEP", "MIN_STEP", "ResidualTransform", "decode", "encode"]

BLOCK = 8
MIN_STEP = 0.5
MAX_STEP = 1000.0
_STEP_SCALE = 64
_CHROMA_STEP = 2.0
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

    def quantised(self, step: float) -> np.ndarray:
        """The integer coefficients at ``step`` (rounded to what the payload can carry)."""
        step = _carried(step)
        return np.round(self.coefficients / (np.float32(step) * _WEIGHTS[:, None, None])).astype(np.int32)

    def image(self, step: float) -> np.ndarray:
        """What the receiver decodes at ``step``: the base plus the dequantised residual, uint8 [H,W,3]."""
        return _reconstruct(self.base, self.quantised(step), _carried(step))


def _carried(step: float) -> float:
    """``step`` as the payload carries it (a multiple of 1/64 within the limits)."""
    return round(float(np.clip(step, MIN_STEP, MAX_STEP)) * _STEP_SCALE) / _STEP_SCALE


def _reconstruct(base: np.ndarray, quantised: np.ndarray, step: float) -> np.ndarray:
    height, width = base.shape[:2]
    by, bx = _blocks(height, width)
    blocks = _DCT.T @ (quantised.astype(np.float32) * (np.float32(step) * _WEIGHTS[:, None, None])) @ _DCT
    residual = blocks.transpose(1, 3, 2, 4, 0).reshape(by * BLOCK, bx * BLOCK, 3)[:height, :width]
    return np.clip(np.round(base + residual @ _YCC_TO_RGB.T), 0, 255).astype(np.uint8)


def encode(transform: ResidualTransform, step: float) -> bytes:
    """The refinement payload of ``transform`` at ``step``."""
    values = transform.quantised(step).transpose(0, 3, 4, 1, 2).ravel()
    if np.abs(values).max(initial=0) >= 1 << 15:
        raise ValueError("refinement step too small for this residual")
    mapped = np.where(values < 0, -2 * values - 1, 2 * values).astype("<u2")
    planes = mapped.view(np.uint8).reshape(-1, 2).T.tobytes()
    head = struct.pack(">H", round(_carried(step) * _STEP_SCALE))
    return head + lzma.compress(planes, format=lzma.FORMAT_RAW, filters=_FILTERS)


def decode(base: np.ndarray, payload: bytes) -> np.ndarray:
    """``base`` (uint8 [H,W,3], the network's image) refined by ``payload``; raises ``InvalidBitstream``."""
    if len(payload) < 2:
        raise InvalidBitstream("refinement payload truncated")
    (scaled,) = struct.unpack(">H", payload[:2])
    step = scaled / _STEP_SCALE
    if not MIN_STEP <= step <= MAX_STEP:
        raise InvalidBitstream(f"refinement step {step} out of range")
    height, width = base.shape[:2]
    by, bx = _blocks(height, width)
    count = 3 * BLOCK * BLOCK * by * bx
    decompressor = lzma.LZMADecompressor(format=lzma.FORMAT_RAW, filters=_FILTERS)
    try:
        planes = decompressor.decompress(payload[2:], max_length=2 * count + 1)
    except lzma.LZMAError as error:
        raise InvalidBitstream(f"refinement payload corrupt: {error}") from None
    if len(planes) != 2 * count:
        raise InvalidBitstream(f"refinement payload holds {len(planes)} bytes, the image needs {2 * count}")
    mapped = np.frombuffer(planes, np.uint8).reshape(2, count).T.copy().view("<u2").ravel().astype(np.int32)
    values = np.where(mapped & 1, -(mapped + 1) // 2, mapped // 2)
    quantised = values.reshape(3, BLOCK, BLOCK, by, bx).transpose(0, 3, 4, 1, 2)
    return _reconstruct(base, quantised, step)
