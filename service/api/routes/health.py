"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool

from service.api.deps import Services, services
from service.errors import ServiceError

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict:
    """The process is alive."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(svc: Services = Depends(services)) -> JSONResponse:
    """The backend answers and serves at least one version of the model; the blob store and the job
    queue can be used."""
    try:
        versions = await run_in_threadpool(svc.client.available_versions, svc.settings.model_name, 2.0)
        await run_in_threadpool(svc.store.check)
        await svc.jobs.check()
    except ServiceError as error:
        return JSONResponse(
            {"ready": False, "reason": error.message}, status_code=503, headers={"Retry-After": "2"}
        )
    if not versions:
        return JSONResponse({"ready": False, "reason": "no model version loaded"}, status_code=503)
    return JSONResponse({"ready": True, "model": svc.settings.model_name, "versions": versions})


@router.get("/metrics", include_in_schema=False)
def prometheus_metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
