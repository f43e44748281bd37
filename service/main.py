"""The FastAPI application: wiring of settings, backend client, codec, storage and routes."""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from starlette.exceptions import HTTPException as StarletteHTTPException

from service.api.deps import open_services
from service.api.job_work import perform_for
from service.api.middleware import MetricsMiddleware, RequestIdMiddleware, UploadLimitMiddleware
from service.api.routes import (
    bitstreams,
    compare,
    compress,
    decompress,
    docs,
    health,
    images,
    jobs,
    web,
)
from service.codec import quality
from service.errors import ServiceError
from service.memory import keep_big_blocks_out_of_the_heap
from service.settings import Settings, get_settings

__all__ = ["create_app"]

log = logging.getLogger("rgic.gateway")


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the gateway for ``settings`` (default: from the environment)."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        keep_big_blocks_out_of_the_heap()
        quality.warm_up()
        app.state.services = svc = open_services(settings)
        await svc.jobs.start(perform_for(svc))
        where = "in Redis" if settings.jobs_url else "in memory"
        log.info("blobs in %s; jobs %s", svc.store.location, where)
        try:
            yield
        finally:
            await svc.jobs.close()
            svc.client.close()

    # /docs and /redoc with Swagger UI's and ReDoc's files served by the gateway, not a CDN.
    app = FastAPIOffline(
        redoc_url=None,  # service/api/routes/docs.py
        title="Recurrent image codec",
        version="0.1.0",
        description="Learned image compression (residual-GRU, Toderici et al. 2017) behind an HTTP API.",
        lifespan=lifespan,
        static_url="/static/docs",
        favicon_url=web.FAVICON_URL,
        swagger_ui_parameters={"validatorUrl": None},
    )

    @app.exception_handler(ServiceError)
    async def service_error(request: Request, error: ServiceError) -> JSONResponse:
        if error.status >= 500 and error.status != 503:
            log.error("%s: %s", error.code, error.message)
        return _error(error.status, error.code, error.message, error.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ()) if p != 'body')}: {e.get('msg')}"
            for e in error.errors()
        )
        return _error(400, "bad_parameter", problems or "invalid request")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(error.status_code, "http_error")
        return _error(error.status_code, code, str(error.detail))

    for router in (
        compress.router,
        compare.router,
        images.router,
        jobs.router,
        decompress.router,
        bitstreams.router,
        health.router,
        web.router,
        docs.router,
    ):
        app.include_router(router)
    app.mount(web.STATIC_URL, StaticFiles(directory=web.STATIC_DIR), name="static")
    app.add_middleware(UploadLimitMiddleware, max_bytes=settings.max_upload_bytes)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["*"],
            expose_headers=["*"],
        )
    app.add_middleware(MetricsMiddleware)
    app.add_middleware(RequestIdMiddleware)  # outermost: the id is set before anything logs
    return app
