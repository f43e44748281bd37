"""The classical codecs we compare with, through Pillow, each at a list of quality settings."""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
from PIL import Image

__all__ = ["BASELINES", "encode_decode"]


def _jpeg(image: Image.Image, quality: int, out: io.BytesIO) -> None:
    image.save(out, format="JPEG", quality=quality, optimize=True, subsampling=2)  # 4:2:0


def _webp(image: Image.Image, quality: int, out: io.BytesIO) -> None:
    image.save(out, format="WEBP", quality=quality, method=6)


def _avif(image: Image.Image, quality: int, out: io.BytesIO) -> None:
    image.save(out, format="AVIF", quality=quality)


#: name → (encoder, quality settings)
BASELINES: dict[str, tuple[Callable[[Image.Image, int, io.BytesIO], None], list[int]]] = {
    "JPEG 4:2:0": (_jpeg, list(range(5, 100, 5))),
    "WebP": (_webp, list(range(0, 101, 5))),
    "AVIF": (_avif, list(range(0, 101, 5))),
}


def encode_decode(name: str, rgb: np.ndarray, quality: int) -> tuple[int, np.ndarray]:
    """Encode ``rgb`` with baseline ``name`` at ``quality``; returns (bytes, decoded uint8 RGB)."""
    encoder, _ = BASELINES[name]
    buffer = io.BytesIO()
    encoder(Image.fromarray(rgb), quality, buffer)
    decoded = np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))
    return buffer.tell(), decoded
