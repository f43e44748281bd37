"""GET /: the comparison studio page; its assets are served from /static (no CDN, no build step)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, HTMLResponse

router = APIRouter(tags=["web"])

STATIC_DIR = Path(str(resources.files("service.web").joinpath("static")))
STATIC_URL = "/static"
FAVICON_URL = f"{STATIC_URL}/favicon.svg"


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def index() -> HTMLResponse:
    return HTMLResponse(resources.files("service.web").joinpath("index.html").read_text())


@router.get("/favicon.ico", include_in_schema=False)
def favicon() -> FileResponse:
    return FileResponse(STATIC_DIR / "favicon.svg", media_type="image/svg+xml")
