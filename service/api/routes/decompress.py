"""GET /decompress/{id} and POST /decompress: a bitstream back to a PNG, optionally progressive, or
(``Prefer: respond-async``) as a job whose PNG is stored like any other blob."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from service import metrics
from service.api.background import prefers_async, start_job
from service.api.deps import Services, require_api_key, services
from service.api.responses import PNG, progressive_png_stream
from service.codec.bitstream import declared_pixels
from service.codec.images import encode_png
from service.codec.run import Progress
from service.errors import BadParameter

router = APIRouter(tags=["decompress"])

_PROGRESSIVE = Query(False, description="stream each iteration's refinement (multipart/x-mixed-replace)")
_ITERATIONS = Query(
    None, ge=1, description="decode only the first k iterations: the image a progressive receiver shows then"
)
_ASYNC_HELP = """With ``Prefer: respond-async`` (for big photos): ``202 Accepted`` at once, ``Location:
/jobs/{id}``; the job reports its stage and share done, then ``result``: the PNG's ``url``
(``/images/{id}``), ``bytes``, ``width`` and ``height``; or the error this call would have answered."""


async def _decoded_png(
    svc: Services, data: bytes, iterations: int | None, progress: Progress | None = None
) -> tuple[bytes, dict[str, str], tuple[int, int]]:
    """The PNG of ``data`` (its first ``iterations``), headers describing it, and (width, height)."""
    decoded = await svc.limiter.run(
        svc.codec.decompress, data, progress, iterations, pixels=declared_pixels(data)
    )
    if progress is not None:
        progress("writing the PNG", 0.95)
    png = await run_in_threadpool(encode_png, decoded.image)  # not admitted again: the decode was the cost
    timing = ", ".join(f"{k.removesuffix('_seconds')};dur={1000 * v:.1f}" for k, v in decoded.timings.items())
    headers = {
        "X-RGIC-Model": f"{decoded.stream.model_name}/{decoded.stream.model_version}",
        "Server-Timing": timing,
    }
    return png, headers, (decoded.image.shape[1], decoded.image.shape[0])


async def decompress_to_blob(
    svc: Services, data: bytes, iterations: int | None, progress: Progress | None = None
) -> dict:
    """Decode ``data`` to a PNG stored as a blob: the result of an asynchronous decompress."""
    png, headers, (width, height) = await _decoded_png(svc, data, iterations, progress)
    image_id = await run_in_threadpool(svc.store.put, png)
    return {
        "id": image_id,
        "url": f"/images/{image_id}",
        "bytes": len(png),
        "width": width,
        "height": height,
        "model": headers["X-RGIC-Model"],
    }


async def _decode(
    request: Request,
    svc: Services,
    data: bytes,
    progressive: bool,
    route: str,
    iterations: int | None = None,
) -> Response:
    if prefers_async(request):
        if progressive:
            raise BadParameter("a progressive stream cannot be asynchronous: drop progressive or Prefer")
        return await start_job(svc, "decompress", data, {"iterations": iterations})
    if progressive:
        _, frames = await svc.limiter.run(svc.codec.decompress_progressive, data, iterations)
        return progressive_png_stream(svc.limiter.stream(frames, declared_pixels(data)), route)
    png, headers, _ = await _decoded_png(svc, data, iterations)
    metrics.BYTES_OUT.labels(route).inc(len(png))
    return Response(png, media_type=PNG, headers=headers)


@router.get(
    "/decompress/{blob_id}",
    dependencies=[Depends(require_api_key)],
    response_class=Response,
    responses={200: {"content": {PNG: {}, "multipart/x-mixed-replace": {}}}},
    description="Decode a stored bitstream to PNG.\n\n" + _ASYNC_HELP,
)
async def decompress_stored(
    request: Request,
    blob_id: str,
    progressive: bool = _PROGRESSIVE,
    iterations: int | None = _ITERATIONS,
    svc: Services = Depends(services),
):
    data = await run_in_threadpool(svc.store.get, blob_id)
    return await _decode(request, svc, data, progressive, "/decompress/{id}", iterations)


@router.post(
    "/decompress",
    dependencies=[Depends(require_api_key)],
    response_class=Response,
    responses={200: {"content": {PNG: {}, "multipart/x-mixed-replace": {}}}},
    openapi_extra={"requestBody": {"content": {"application/octet-stream": {}}, "required": True}},
    description="Decode a bitstream sent as the request body to PNG.\n\n" + _ASYNC_HELP,
)
async def decompress_upload(
    request: Request,
    progressive: bool = _PROGRESSIVE,
    iterations: int | None = _ITERATIONS,
    svc: Services = Depends(services),
):
    data = await request.body()
    metrics.BYTES_IN.labels("/decompress").inc(len(data))
    return await _decode(request, svc, data, progressive, "/decompress", iterations)
