"""Asynchronous requests (``Prefer: respond-async``): run the work as a job, answer 202 at once."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from fastapi import Request
from fastapi.responses import JSONResponse

from service.api.deps import Services
from service.codec.run import Progress
from service.errors import ServiceError
from service.jobs import Job

__all__ = ["prefers_async", "start_job"]

log = logging.getLogger("rgic.jobs")

#: Running jobs (a reference keeps each task alive until it ends).
_running: set[asyncio.Task] = set()

#: What each kind of job does first, before its work reports a stage of its own.
_FIRST_STAGE = {"decompress": "reading the bitstream"}


def prefers_async(request: Request) -> bool:
    """The client asked for ``Prefer: respond-async``."""
    return "respond-async" in request.headers.get("prefer", "").lower()


def start_job(svc: Services, kind: str, work: Callable[[Progress], Awaitable[dict]]) -> JSONResponse:
    """Start ``work(progress)`` as a job; ``202 Accepted`` with ``Location: /jobs/{id}``."""
    job = svc.jobs.create(kind)
    task = asyncio.create_task(_run(job, work))
    _running.add(task)
    task.add_done_callback(_running.discard)
    return JSONResponse(job.to_json(), status_code=202, headers={"Location": f"/jobs/{job.id}"})


async def _run(job: Job, work: Callable[[Progress], Awaitable[dict]]) -> None:
    job.report_progress(_FIRST_STAGE.get(job.kind, "decoding the upload"), 0.0)
    try:
        body = await work(job.report_progress)
    except ServiceError as error:
        job.fail(error)
    except Exception as error:  # the job must end, as a synchronous call would with a 500
        log.exception("%s job %s failed", job.kind, job.id)
        job.fail(ServiceError(f"internal error: {type(error).__name__}"))
    else:
        job.finish(body)
