"""Asynchronous requests (``Prefer: respond-async``): queue the work as a job, answer 202 at once."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import JSONResponse

from service.api.deps import Services
from service.logs import REQUEST_ID

__all__ = ["prefers_async", "start_job"]


def prefers_async(request: Request) -> bool:
    """The client asked for ``Prefer: respond-async``."""
    return "respond-async" in request.headers.get("prefer", "").lower()


async def start_job(svc: Services, kind: str, data: bytes, params: dict) -> JSONResponse:
    """Queue a ``kind`` job on ``data`` (service/api/job_work.py runs it); ``202 Accepted`` with
    ``Location: /jobs/{id}``."""
    job = await svc.jobs.submit(kind, data, {**params, "request_id": REQUEST_ID.get()})
    return JSONResponse(job.to_json(), status_code=202, headers={"Location": f"/jobs/{job.id}"})
