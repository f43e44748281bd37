"""GET /decompress/{id} and POST /decompress: a bitstream back to a PNG, optionally progressive."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from service import metrics
from service.api.deps import Services, require_api_key, services
from service.api.responses import PNG, progressive_png_stream
from service.codec.bitstream import declared_pixels
from service.codec.images import encode_png

router = APIRouter(tags=["decompress"])

_PROGRESSIVE = Query(False, description="stream each iteration's refinement (multipart/x-mixed-replace)")
_ITERATIONS = Query(
    None, ge=1, description="decode only the first k iterations: the image a progressive receiver shows then"
)


async def _decode(
    svc: Services, data: bytes, progressive: bool, route: str, iterations: int | None = None
) -> Response:
    pixels = declared_pixels(data)
    if iterations is not None:
        data = await svc.limiter.run(svc.codec.truncate, data, iterations)
    if progressive:
        _, frames = await svc.limiter.run(svc.codec.decompress_progressive, data)
        return progressive_png_stream(svc.limiter.stream(frames, pixels), route)
    decoded = await svc.limiter.run(svc.codec.decompress, data, pixels=pixels)
    png = encode_png(decoded.image)
    metrics.BYTES_OUT.labels(route).inc(len(png))
    timing = ", ".join(f"{k.removesuffix('_seconds')};dur={1000 * v:.1f}" for k, v in decoded.timings.items())
    headers = {
        "X-RGIC-Model": f"{decoded.stream.model_name}/{decoded.stream.model_version}",
        "Server-Timing": timing,
    }
    return Response(png, media_type=PNG, headers=headers)


@router.get(
    "/decompress/{blob_id}",
    dependencies=[Depends(require_api_key)],
    response_class=Response,
    responses={200: {"content": {PNG: {}, "multipart/x-mixed-replace": {}}}},
)
async def decompress_stored(
    blob_id: str,
    progressive: bool = _PROGRESSIVE,
    iterations: int | None = _ITERATIONS,
    svc: Services = Depends(services),
):
    """Decode a stored bitstream to PNG."""
    return await _decode(svc, svc.store.get(blob_id), progressive, "/decompress/{id}", iterations)


@router.post(
    "/decompress",
    dependencies=[Depends(require_api_key)],
    response_class=Response,
    responses={200: {"content": {PNG: {}, "multipart/x-mixed-replace": {}}}},
    openapi_extra={"requestBody": {"content": {"application/octet-stream": {}}, "required": True}},
)
async def decompress_upload(
    request: Request,
    progressive: bool = _PROGRESSIVE,
    iterations: int | None = _ITERATIONS,
    svc: Services = Depends(services),
):
    """Decode a bitstream sent as the request body to PNG."""
    data = await request.body()
    metrics.BYTES_IN.labels("/decompress").inc(len(data))
    return await _decode(svc, data, progressive, "/decompress", iterations)
