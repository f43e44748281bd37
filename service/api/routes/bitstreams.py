"""GET /bitstreams/{id} (all of it, or the shortest prefix meeting a quality) and its header as JSON."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from service.api.deps import Services, require_api_key, services
from service.api.responses import OCTET
from service.codec.bitstream import Bitstream
from service.codec.ladder import Rung, choose_rung, ladder_from_json, ladder_to_json, rung_bitstream
from service.errors import NotInLadder

router = APIRouter(tags=["bitstreams"])


def header_info(stream: Bitstream, size: int) -> dict:
    """A bitstream's header as a JSON-able dict (also printed by ``rgic info``)."""
    counts = stream.patch_iterations
    return {
        "bytes": size,
        "model": {"name": stream.model_name, "version": stream.model_version},
        "width": stream.width,
        "height": stream.height,
        "patch_size": stream.patch_size,
        "tile_size": stream.tile_size,
        "bits_per_cell": stream.bits_per_cell,
        "patches": list(counts.shape),
        "iterations": {"min": int(counts.min()), "max": int(counts.max()), "mean": float(counts.mean())},
        "coder_id": stream.coder_id,
        "payload_bytes": len(stream.payload),
        "refinement_bytes": len(stream.refinement),
        "steps": stream.steps,
        "bpp": 8 * size / (stream.width * stream.height),
    }


def stored_ladder(svc: Services, blob_id: str) -> list[Rung]:
    """The quality ladder compress recorded for ``blob_id`` (empty when it measured none)."""
    document = svc.store.get_metadata(blob_id)
    return ladder_from_json(document["ladder"]) if document else []


@router.get(
    "/bitstreams/{blob_id}",
    dependencies=[Depends(require_api_key)],
    response_class=Response,
    responses={200: {"content": {OCTET: {}}}, 422: {"description": "no rung meets the quality or size"}},
)
def get_bitstream(
    blob_id: str,
    msssim: float | None = Query(None, gt=0, le=1, description="the smallest rung whose image meets it"),
    psnr: float | None = Query(None, gt=0, description="the smallest rung whose image meets it (dB)"),
    max_bytes: int | None = Query(None, alias="bytes", gt=0, description="the best rung within it"),
    svc: Services = Depends(services),
) -> Response:
    """The stored bitstream's bytes; with ``msssim``, ``psnr`` or ``bytes``, the smallest rung of its
    quality ladder that meets that quality (the best within that size), itself a valid bitstream: a
    prefix of its steps, (``X-RGIC-Cut: per-patch``) its network iterations with each patch cut at
    the count a compress at a lower target chose, or (``alternate``, below a bitstream the layer made)
    the network bitstream compress coded beside it for that target. Chosen from the qualities compress
    measured on the decoded rungs: no encode. ``X-RGIC-Steps`` and the rung's measured ``X-RGIC-MSSSIM`` /
    ``X-RGIC-PSNR`` describe it."""
    data = svc.store.get(blob_id)
    if msssim is None and psnr is None and max_bytes is None:
        return Response(data, media_type=OCTET)
    ladder = stored_ladder(svc, blob_id)
    if not ladder:
        raise NotInLadder(
            f"bitstream {blob_id} has no quality ladder: compress measures one for images up to "
            "RGIC_LADDER_MAX_PIXELS"
        )
    rung = choose_rung(ladder, msssim, psnr, max_bytes)
    answer = rung_bitstream(svc.codec, data, rung)
    headers = {
        "X-RGIC-Steps": str(rung.steps),
        "X-RGIC-Cut": rung.cut,
        "X-RGIC-MSSSIM": f"{rung.msssim:.6f}",
        "X-RGIC-PSNR": "inf" if rung.psnr is None else f"{rung.psnr:.4f}",
    }
    return Response(answer, media_type=OCTET, headers=headers)


@router.get("/bitstreams/{blob_id}/info", dependencies=[Depends(require_api_key)])
def get_bitstream_info(blob_id: str, svc: Services = Depends(services)) -> dict:
    """The stored bitstream's header, and its quality ladder when compress measured one."""
    data = svc.store.get(blob_id)
    return {
        **header_info(Bitstream.from_bytes(data), len(data)),
        "ladder": ladder_to_json(stored_ladder(svc, blob_id), stored=False),
    }
