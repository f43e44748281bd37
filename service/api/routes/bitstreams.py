"""GET /bitstreams/{id} and its header as JSON."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import Response

from service.api.deps import Services, require_api_key, services
from service.api.responses import OCTET
from service.codec.bitstream import Bitstream

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


@router.get(
    "/bitstreams/{blob_id}",
    dependencies=[Depends(require_api_key)],
    response_class=Response,
    responses={200: {"content": {OCTET: {}}}},
)
def get_bitstream(blob_id: str, svc: Services = Depends(services)) -> Response:
    """The stored bitstream's bytes."""
    return Response(svc.store.get(blob_id), media_type=OCTET)


@router.get("/bitstreams/{blob_id}/info", dependencies=[Depends(require_api_key)])
def get_bitstream_info(blob_id: str, svc: Services = Depends(services)) -> dict:
    """The stored bitstream's header."""
    data = svc.store.get(blob_id)
    return header_info(Bitstream.from_bytes(data), len(data))
