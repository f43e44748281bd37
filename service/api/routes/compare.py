"""POST /compare: ours and each classic codec (JPEG 4:2:0, WebP, AVIF, JPEG XL) at the same byte budget."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from service.api.background import prefers_async, start_job
from service.api.deps import Services, require_api_key, services
from service.api.responses import finite
from service.api.routes.compress import Upload, compress_upload, upload_form
from service.codec.ladder import prefix_sizes
from service.codec.rate_control import Target
from service.codec.run import Progress
from service.comparison.same_bytes import ClassicResult, classic_at_budget

router = APIRouter(tags=["compare"])

#: Shares of a comparison's time: ours, then the classic codecs, then our progressive steps.
_OURS_SHARE, _CLASSIC_SHARE = 0.55, 0.4


def _classic_json(entry: ClassicResult, pixels: int, image_id: str | None) -> dict:
    if entry.file is None:
        return {"codec": entry.codec, "fits": False, "message": "even its lowest quality is larger than ours"}
    size = len(entry.file.data)
    return {
        "codec": entry.codec,
        "fits": True,
        "quality": entry.file.quality,
        "bytes": size,
        "bpp": 8 * size / pixels,
        "ssimulacra2": finite(entry.ssimulacra2) if entry.ssimulacra2 is not None else None,
        "msssim": entry.msssim,
        "psnr": finite(entry.psnr),
        "url": f"/images/{image_id}",
    }


def _within(progress: Progress | None, start: float, share: float) -> Progress | None:
    """``progress`` for a part of the work that spans [start, start + share] of the whole."""
    if progress is None:
        return None
    return lambda stage, done: progress(stage, start + share * done)


async def compare_upload(
    svc: Services, data: bytes, target: Target, progress: Progress | None = None
) -> dict:
    """Compress the upload, then each classic codec at no more bytes; their files stored as blobs."""
    limit = min(svc.settings.compare_max_pixels, svc.settings.max_pixels)
    ours = await compress_upload(svc, data, target, _within(progress, 0.0, _OURS_SHARE), limit)
    rgb = ours.upload.rgb
    pixels = rgb.shape[0] * rgb.shape[1]
    budget = len(ours.result.bitstream)
    classic = await svc.limiter.run(
        classic_at_budget, rgb, budget, _within(progress, _OURS_SHARE, _CLASSIC_SHARE), pixels=pixels
    )
    if progress:
        progress("measuring our progressive steps", _OURS_SHARE + _CLASSIC_SHARE)
    prefixes = [(rung.steps, rung.bytes) for rung in ours.ladder if rung.cut == "prefix"]
    steps = prefixes or await svc.limiter.run(prefix_sizes, svc.codec, ours.result.bitstream)
    ids = [await run_in_threadpool(svc.store.put, e.file.data) if e.file else None for e in classic]
    return {
        "ours": ours.body,
        "classic": [_classic_json(e, pixels, blob_id) for e, blob_id in zip(classic, ids, strict=True)],
        "steps": [
            {
                "iterations": k,
                "bytes": size,
                "url": f"/decompress/{ours.blob_id}?iterations={k}",
                "refinement": k > ours.result.iterations,  # the layer after the network's iterations
            }
            for k, size in steps
        ],
    }


@router.post("/compare", dependencies=[Depends(require_api_key)])
async def compare(
    request: Request, upload: Upload = Depends(upload_form), svc: Services = Depends(services)
) -> JSONResponse:
    """Compress an image as ``POST /compress`` does, then encode it with JPEG 4:2:0, WebP, AVIF and JPEG
    XL, each at the largest quality (0-100, by bisection) whose file is not larger than our bitstream.

    Answers ``ours`` (the compress report), ``classic`` (each codec's quality, bytes, bpp, SSIMULACRA 2,
    MS-SSIM, PSNR
    and ``/images/{id}`` URL, or ``fits: false``) and ``steps`` (bytes our first k iterations need, with
    the URL of that image). Images above ``RGIC_COMPARE_MAX_PIXELS`` (default 4 Mpx) get 413: the classic
    encoders' bisection costs about 10 s of CPU per 4 Mpx. Runs under the same concurrency and pixel
    limits as compress (503 with Retry-After past them); ``Prefer: respond-async`` gives a job."""
    data, target = upload.data, upload.target
    if prefers_async(request):
        return await start_job(svc, "compare", data, {"target": asdict(target)})
    return JSONResponse(await compare_upload(svc, data, target))
