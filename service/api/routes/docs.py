"""GET /redoc with ReDoc's script served by the gateway (Swagger UI's /docs comes from fastapi-offline).

ReDoc's bundle fetches its "API docs by Redocly" logo from cdn.redoc.ly; behind a firewall that is a
failed request, so the gateway serves the bundle with that URL pointing at its own icon.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import fastapi_offline
from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_redoc_html
from fastapi.responses import HTMLResponse, Response

from service.api.routes.web import FAVICON_URL

router = APIRouter(tags=["docs"])

_REDOC_BUNDLE = Path(fastapi_offline.__file__).parent / "static" / "redoc.standalone.js"
_REDOC_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"
REDOC_JS_URL = "/redoc/redoc.standalone.js"  # beside the page: /static/ is a mount


@cache
def _redoc_script() -> bytes:
    return _REDOC_BUNDLE.read_text(encoding="utf-8").replace(_REDOC_LOGO, FAVICON_URL).encode()


@router.get(REDOC_JS_URL, include_in_schema=False)
def redoc_script() -> Response:
    return Response(_redoc_script(), media_type="text/javascript")


@router.get("/redoc", include_in_schema=False)
def redoc(request: Request) -> HTMLResponse:
    root = request.scope.get("root_path", "")
    return get_redoc_html(
        openapi_url=f"{root}{request.app.openapi_url}",
        title=f"{request.app.title} - ReDoc",
        redoc_js_url=f"{root}{REDOC_JS_URL}",
        redoc_favicon_url=f"{root}{FAVICON_URL}",
        with_google_fonts=False,
    )
