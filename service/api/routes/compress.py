"""POST /compress: an uploaded image in, a bitstream (stored) and measured metrics out."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from service import metrics
from service.api.background import prefers_async, start_job
from service.api.deps import Services, require_api_key, services
from service.api.responses import JSON, OCTET, PNG, finite, negotiate
from service.codec.images import DecodedImage, decode_image, encode_png
from service.codec.ladder import Rung, ladder_to_json, measure_ladder
from service.codec.pipeline import CompressResult, Progress
from service.codec.rate_control import PRESETS, Target, choose_target

router = APIRouter(tags=["compress"])

_PRESET_LIST = ", ".join(f"{name} ({score:g})" for name, score in PRESETS.items())


@dataclass
class Upload:
    """The multipart form of compress and compare: the image's bytes and the target asked for."""

    data: bytes
    target: Target


async def upload_form(
    request: Request,
    image: UploadFile = File(..., description="PNG, JPEG, WebP, ... image"),
    ssimulacra2: float | None = Form(
        None,
        description="minimum SSIMULACRA 2 (30 low, 50 medium, 70 high, 90 visually lossless); "
        "the default target is ssimulacra2=70 (RGIC_DEFAULT_TARGET)",
    ),
    quality: str | None = Form(None, description="a named SSIMULACRA 2 score: " + _PRESET_LIST),
    msssim: float | None = Form(None, description="minimum MS-SSIM (0.95: the seed's operating point)"),
    psnr: float | None = Form(None, description="minimum PSNR in dB"),
    bpp: float | None = Form(None, description="maximum bits per pixel"),
    svc: Services = Depends(services),
) -> Upload:
    """The form's fields, read and checked (one target at most), shared by the routes that take it."""
    given = {"ssimulacra2": ssimulacra2, "quality": quality, "msssim": msssim, "psnr": psnr, "bpp": bpp}
    target = choose_target(given, svc.settings.target)
    data = await image.read()
    metrics.BYTES_IN.labels(request.url.path).inc(len(data))
    return Upload(data, target)


def report(
    result: CompressResult, blob_id: str, width: int, height: int, notes: list[str], ladder: list[Rung]
) -> dict:
    """The JSON body describing one compression."""
    counts = result.patch_iterations
    return {
        "id": blob_id,
        "bytes": len(result.bitstream),
        "bpp": result.bpp,
        "ssimulacra2": finite(result.ssimulacra2),  # null: under 8 pixels a side
        "msssim": result.msssim,
        "psnr": finite(result.psnr),  # null: identical to the upload
        "width": width,
        "height": height,
        "iterations": result.iterations,
        "refinement_bytes": result.refinement_bytes,
        "coder": result.coder,
        "coder_bytes": result.coder_bytes,
        "patch_iterations": {
            "min": int(counts.min()),
            "max": int(counts.max()),
            "mean": float(counts.mean()),
        },
        "target": {"kind": result.target.kind, "value": result.target.value, "met": result.target_met},
        "model": {"name": result.model_name, "version": result.model_version},
        "timings": result.timings,
        "notes": notes,
        "ladder": ladder_to_json(ladder, stored=False),
        "urls": {
            "bitstream": f"/bitstreams/{blob_id}",
            "decompress": f"/decompress/{blob_id}",
            "progressive": f"/decompress/{blob_id}?progressive=true",
        },
    }


@dataclass
class Compressed:
    """One upload compressed: the decoded upload, the codec's result, its blob id and the JSON report."""

    upload: DecodedImage
    result: CompressResult
    blob_id: str
    body: dict
    #: every prefix's size and quality (empty above ``ladder_max_pixels``)
    ladder: list[Rung]


async def compress_upload(
    svc: Services,
    data: bytes,
    target: Target,
    progress: Progress | None = None,
    max_pixels: int | None = None,
) -> Compressed:
    """Decode the upload (413 past ``max_pixels``, default the service's limit), compress it, store the
    bitstream."""
    decoded = await svc.limiter.run(decode_image, data, max_pixels or svc.settings.max_pixels)
    pixels = decoded.rgb.shape[0] * decoded.rgb.shape[1]
    measured = pixels <= svc.settings.ladder_max_pixels
    result = await svc.limiter.run(svc.codec.compress, decoded.rgb, target, progress, measured, pixels=pixels)
    blob_id = await run_in_threadpool(svc.store.put, result.bitstream)
    ladder: list[Rung] = []
    if measured:
        if progress is not None:
            progress("measuring every prefix's quality", 0.97)
        ladder = await svc.limiter.run(
            measure_ladder, svc.codec, result.bitstream, decoded.rgb, result, pixels=pixels
        )
        await run_in_threadpool(svc.store.put_metadata, blob_id, {"ladder": ladder_to_json(ladder)})
    _observe(result)
    height, width = decoded.rgb.shape[:2]
    body = report(result, blob_id, width, height, decoded.notes, ladder)
    return Compressed(decoded, result, blob_id, body, ladder)


def _observe(result: CompressResult) -> None:
    metrics.PATCHES_PER_REQUEST.observe(result.patch_iterations.size)
    for count in result.patch_iterations.reshape(-1):
        metrics.ITERATIONS_PER_PATCH.observe(int(count))
    metrics.BITS_PER_PIXEL.observe(result.bpp)
    metrics.ACHIEVED_MSSSIM.observe(result.msssim)
    if not result.target_met:
        metrics.TARGET_MISSED.labels(result.target.kind).inc()


@router.post(
    "/compress",
    dependencies=[Depends(require_api_key)],
    responses={
        200: {"content": {OCTET: {}, PNG: {}}, "description": "JSON report, bitstream or reconstruction"}
    },
)
async def compress(
    request: Request, upload: Upload = Depends(upload_form), svc: Services = Depends(services)
) -> Response:
    """Compress an image to the requested target. JSON by default; ``Accept: application/octet-stream``
    returns the bitstream and ``Accept: image/png`` the reconstruction, with metrics in headers.

    With ``Prefer: respond-async`` (for big photos): ``202 Accepted`` at once, ``Location: /jobs/{id}``;
    the job reports its stage and share done, then this call's JSON report or its error."""
    data, target = upload.data, upload.target
    if prefers_async(request):
        return await start_job(svc, "compress", data, {"target": asdict(target)})
    done = await compress_upload(svc, data, target)
    result, blob_id, body = done.result, done.blob_id, done.body
    media_type = negotiate(request, (JSON, OCTET, PNG))
    if media_type == JSON:
        response: Response = JSONResponse(body)
    else:
        content = result.bitstream if media_type == OCTET else encode_png(result.reconstruction)
        response = Response(content, media_type=media_type)
        response.headers.update(
            {
                "X-RGIC-Id": blob_id,
                "X-RGIC-SSIMULACRA2": f"{result.ssimulacra2:.3f}",
                "X-RGIC-MSSSIM": f"{result.msssim:.6f}",
                "X-RGIC-PSNR": f"{result.psnr:.4f}",
                "X-RGIC-BPP": f"{result.bpp:.6f}",
                "X-RGIC-Iterations": str(result.iterations),
                "X-RGIC-Target-Met": str(result.target_met).lower(),
                "X-RGIC-Coder": result.coder,
                "X-RGIC-Model": f"{result.model_name}/{result.model_version}",
            }
        )
    metrics.BYTES_OUT.labels("/compress").inc(len(response.body))
    return response
