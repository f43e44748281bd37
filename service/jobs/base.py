"""What a job backend does: take work, run it (here or on another replica), answer its record."""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable

from service import metrics
from service.errors import ServiceError
from service.jobs.records import Job
from service.logs import REQUEST_ID

__all__ = ["JobBackend", "Perform", "run_job"]

log = logging.getLogger("rgic.jobs")

#: the work of a job: (kind, input bytes, parameters, progress callback) -> the result JSON
Perform = Callable[[str, bytes, dict, Callable[[str, float], None]], Awaitable[dict]]

#: What each kind of job does first, before its work reports a stage of its own.
_FIRST_STAGE = {"decompress": "reading the bitstream"}


class JobBackend(ABC):
    """Jobs by id. ``submit`` records and queues one; ``start`` begins running queued jobs with
    ``perform``; ``get`` answers a job's record from any replica that shares the backend."""

    @abstractmethod
    async def submit(self, kind: str, data: bytes, params: dict) -> Job:
        """Record and queue a job of ``kind`` on ``data``; returns its first record."""

    @abstractmethod
    async def get(self, job_id: str) -> Job:
        """The job's record; ``NotFound`` when unknown or expired."""

    async def start(self, perform: Perform) -> None:
        """Begin running jobs with ``perform`` (in this process)."""

    async def close(self) -> None:
        """Stop running jobs and let go of connections."""

    async def check(self) -> None:
        """Raise ``ServiceError`` when jobs cannot be taken now (for /readyz)."""


async def run_job(job: Job, perform: Perform, data: bytes, params: dict) -> None:
    """Run ``perform`` for ``job``, recording its stages and its end: its result, or the error the
    synchronous call would have answered. The caller counts the attempt (``job.attempts``)."""
    REQUEST_ID.set(params.get("request_id", job.id))  # this task's log lines: the request that made it
    job.report_progress(_FIRST_STAGE.get(job.kind, "decoding the upload"), 0.0)
    metrics.JOBS_IN_FLIGHT.inc()
    try:
        job.finish(await perform(job.kind, data, params, job.report_progress))
    except ServiceError as error:
        job.fail(error)
    except Exception as error:  # the job must end, as a synchronous call would with a 500
        log.exception("%s job %s failed", job.kind, job.id)
        job.fail(ServiceError(f"internal error: {type(error).__name__}"))
    finally:
        metrics.JOBS_IN_FLIGHT.dec()
    metrics.JOBS_FINISHED.labels(job.kind, job.status).inc()
