"""Asynchronous jobs: long work that reports its stage and share done while it runs.

``POST /compress`` with ``Prefer: respond-async`` answers ``202 Accepted`` at once with a job URL; the
work runs like a synchronous request and ``GET /jobs/{id}`` tells its stage, the share done, and at the
end the same report or the same error body the synchronous call would have answered. Jobs live in this
process's memory (the default) or in Redis/Valkey (``RGIC_JOBS_URL``), shared by every replica.
"""

from __future__ import annotations

from service.jobs.base import JobBackend, Perform, run_job
from service.jobs.memory import InProcessJobs
from service.jobs.records import Job
from service.settings import Settings
from service.storage import BlobStore

__all__ = ["InProcessJobs", "Job", "JobBackend", "Perform", "open_jobs", "run_job"]


def open_jobs(settings: Settings, store: BlobStore, workers: int | None = None) -> JobBackend:
    """The job backend ``settings.jobs_url`` names (empty: this process's memory)."""
    if not settings.jobs_url:
        return InProcessJobs()
    from service.jobs.redis_queue import RedisJobs  # redis and saq load only where used

    return RedisJobs(
        settings.jobs_url,
        store,
        workers=settings.job_workers if workers is None else workers,
        heartbeat_seconds=settings.job_heartbeat_seconds,
        ttl_seconds=int(settings.job_ttl_hours * 3600),
    )
