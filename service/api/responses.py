"""Response helpers shared by routes: content negotiation and progressive multipart streams."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from fastapi import Request
from fastapi.responses import StreamingResponse

from service import metrics
from service.codec.images import encode_png

__all__ = ["BOUNDARY", "finite", "negotiate", "progressive_png_stream"]

BOUNDARY = "rgic-frame"
OCTET = "application/octet-stream"
PNG = "image/png"
JSON = "application/json"


def finite(value: float) -> float | None:
    """``value`` for a JSON body, which has no infinity: None where it is infinite (the PSNR of an exact
    reconstruction)."""
    return value if np.isfinite(value) else None


def negotiate(request: Request, offered: tuple[str, ...]) -> str:
    """The first media type of ``offered`` that the Accept header names; the first one otherwise."""
    accept = request.headers.get("accept", "")
    wanted = [part.split(";")[0].strip().lower() for part in accept.split(",") if part.strip()]
    for media_type in wanted:
        if media_type in offered:
            return media_type
    return offered[0]


def progressive_png_stream(frames: Iterator[np.ndarray], route: str) -> StreamingResponse:
    """``multipart/x-mixed-replace`` of one PNG per refinement: a browser <img> sharpens in place."""

    def body() -> Iterator[bytes]:
        for frame in frames:
            png = encode_png(frame)
            part = (
                f"--{BOUNDARY}\r\nContent-Type: image/png\r\nContent-Length: {len(png)}\r\n\r\n".encode()
                + png
                + b"\r\n"
            )
            metrics.BYTES_OUT.labels(route).inc(len(part))
            yield part
        yield f"--{BOUNDARY}--\r\n".encode()

    return StreamingResponse(body(), media_type=f"multipart/x-mixed-replace; boundary={BOUNDARY}")
