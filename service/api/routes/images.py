"""GET /images/{id}: stored images — the classic codecs' files of POST /compare and the PNGs of
asynchronous decompress jobs — with their media type."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import Response

from service.api.deps import Services, require_api_key, services
from service.api.responses import PNG
from service.comparison.classic import media_type
from service.errors import NotFound

router = APIRouter(tags=["images"])

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def stored_image_type(data: bytes) -> str | None:
    """The media type of a stored image (PNG, JPEG, WebP, AVIF), None for anything else."""
    return PNG if data.startswith(_PNG_SIGNATURE) else media_type(data)


@router.get(
    "/images/{image_id}",
    dependencies=[Depends(require_api_key)],
    response_class=Response,
    responses={200: {"content": {PNG: {}, "image/jpeg": {}, "image/webp": {}, "image/avif": {}}}},
)
def get_image(image_id: str, svc: Services = Depends(services)) -> Response:
    """A stored image: a classic codec's file from ``POST /compare`` or a decompress job's PNG."""
    data = svc.store.get(image_id)
    kind = stored_image_type(data)
    if kind is None:
        raise NotFound(f"no image with id {image_id[:80]!r} (bitstreams are at /bitstreams/{{id}})")
    return Response(data, media_type=kind, headers={"Cache-Control": "public, max-age=31536000, immutable"})
