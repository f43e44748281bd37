"""The classic codecs we compare with, through Pillow: encode at a quality, and the largest quality
whose file fits a byte budget."""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pillow_jxl  # noqa: F401  (registers JPEG XL with Pillow)
from PIL import Image

__all__ = ["CLASSIC_CODECS", "ClassicCodec", "ClassicFile", "encode_decode", "largest_within", "media_type"]


@dataclass(frozen=True)
class ClassicCodec:
    """One classic codec: how Pillow writes it, its quality settings for curves, and its media type."""

    name: str
    save: Callable[[Image.Image, int, io.BytesIO], None]
    qualities: tuple[int, ...]
    media_type: str


@dataclass
class ClassicFile:
    """A classic codec's file at one quality, and the image a viewer decodes from it."""

    codec: str
    quality: int
    data: bytes
    decoded: np.ndarray  # uint8 [H, W, 3]


def _jpeg(image: Image.Image, quality: int, out: io.BytesIO) -> None:
    image.save(out, format="JPEG", quality=quality, optimize=True, subsampling=2)  # 4:2:0


def _webp(image: Image.Image, quality: int, out: io.BytesIO) -> None:
    image.save(out, format="WEBP", quality=quality, method=6)


def _avif(image: Image.Image, quality: int, out: io.BytesIO) -> None:
    image.save(out, format="AVIF", quality=quality)


def _jxl(image: Image.Image, quality: int, out: io.BytesIO) -> None:
    if quality >= 100:  # libjxl's encoder refuses quality 100 without its lossless mode
        image.save(out, format="JXL", lossless=True)
    else:
        image.save(out, format="JXL", quality=quality)


#: name → codec, in the order reports list them.
CLASSIC_CODECS: dict[str, ClassicCodec] = {
    c.name: c
    for c in (
        ClassicCodec("JPEG 4:2:0", _jpeg, tuple(range(5, 100, 5)), "image/jpeg"),
        ClassicCodec("WebP", _webp, tuple(range(0, 101, 5)), "image/webp"),
        ClassicCodec("AVIF", _avif, tuple(range(0, 101, 5)), "image/avif"),
        ClassicCodec("JPEG XL", _jxl, tuple(range(5, 101, 5)), "image/jxl"),
    )
}


def encode(name: str, rgb: np.ndarray, quality: int) -> ClassicFile:
    """``rgb`` written by classic codec ``name`` at ``quality``, and decoded back."""
    buffer = io.BytesIO()
    CLASSIC_CODECS[name].save(Image.fromarray(rgb), quality, buffer)
    data = buffer.getvalue()
    decoded = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    return ClassicFile(name, quality, data, decoded)


def encode_decode(name: str, rgb: np.ndarray, quality: int) -> tuple[int, np.ndarray]:
    """Encode ``rgb`` with codec ``name`` at ``quality``; returns (bytes, decoded uint8 RGB)."""
    file = encode(name, rgb, quality)
    return len(file.data), file.decoded


def largest_within(name: str, rgb: np.ndarray, max_bytes: int) -> ClassicFile | None:
    """The highest quality (0-100) of codec ``name`` whose file fits in ``max_bytes``, or None if even
    quality 0 does not fit. Bisection (sizes rise with quality): at most 8 encodes."""
    low, high = 0, 100
    best = encode(name, rgb, low)
    if len(best.data) > max_bytes:
        return None
    while low < high:
        middle = (low + high + 1) // 2
        file = encode(name, rgb, middle)
        if len(file.data) <= max_bytes:
            low, best = middle, file
        else:
            high = middle - 1
    return best


def media_type(data: bytes) -> str | None:
    """The media type of a classic codec's file from its first bytes (None for anything else)."""
    if data[:3] == b"\xff\xd8\xff":
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[4:8] == b"ftyp" and data[8:12] in (b"avif", b"avis"):
        return "image/avif"
    if data[:2] == b"\xff\x0a" or data[:12] == b"\x00\x00\x00\x0cJXL \r\n\x87\n":
        return "image/jxl"
    return None
