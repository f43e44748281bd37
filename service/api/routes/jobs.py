"""GET /jobs/{id}: the stage, share done and outcome of an asynchronous request."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from service.api.deps import Services, require_api_key, services

router = APIRouter(tags=["jobs"])


@router.get("/jobs/{job_id}", dependencies=[Depends(require_api_key)])
async def job_status(job_id: str, svc: Services = Depends(services)) -> dict:
    """``status`` (queued, running, done, failed), ``stage``, ``progress`` (0-1); when done, ``result``:
    the report the synchronous call answers; when failed, ``error`` and ``http_status``: its error."""
    return (await svc.jobs.get(job_id)).to_json()
