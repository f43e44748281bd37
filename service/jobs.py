"""Asynchronous jobs: long work that reports its stage and share done while it runs.

``POST /compress`` with ``Prefer: respond-async`` answers ``202 Accepted`` at once with a job URL; the
work runs in the service like a synchronous request and ``GET /jobs/{id}`` tells its stage, the share
done, and at the end the same report (its bitstream in the blob store like any other) or the same error
body the synchronous call would have answered. Jobs live in memory, the newest ``MAX_JOBS`` kept.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field

from service.errors import NotFound, ServiceError

__all__ = ["Job", "JobRegistry"]

MAX_JOBS = 1000


@dataclass
class Job:
    """One asynchronous request: ``status`` queued → running → done or failed."""

    id: str
    kind: str
    status: str = "queued"
    stage: str = "queued"
    progress: float = 0.0
    result: dict | None = None
    error: ServiceError | None = None
    created: float = field(default_factory=time.time)
    #: Every stage entered so far, in order: a client polling now and then still learns what ran.
    stages: list[str] = field(default_factory=list)

    def report_progress(self, stage: str, share: float) -> None:
        """Called from the worker: the stage it entered and the share of the work done (0-1)."""
        self.status, self.stage = "running", stage
        self.progress = max(self.progress, min(1.0, share))
        if not self.stages or self.stages[-1] != stage:
            self.stages.append(stage)

    def finish(self, result: dict) -> None:
        self.result, self.status, self.stage, self.progress = result, "done", "done", 1.0

    def fail(self, error: ServiceError) -> None:
        self.error, self.status, self.stage = error, "failed", "failed"

    def to_json(self) -> dict:
        body: dict = {
            "id": self.id,
            "kind": self.kind,
            "status": self.status,
            "stage": self.stage,
            "progress": round(self.progress, 3),
            "stages": list(self.stages),
            "url": f"/jobs/{self.id}",
        }
        if self.result is not None:
            body["result"] = self.result
        if self.error is not None:  # what the synchronous call would have answered
            body["error"] = {"code": self.error.code, "message": self.error.message}
            body["http_status"] = self.error.status
        return body


class JobRegistry:
    """Jobs by id, thread-safe; the oldest are forgotten past ``MAX_JOBS``."""

    def __init__(self, max_jobs: int = MAX_JOBS) -> None:
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._lock = threading.Lock()
        self.max_jobs = max_jobs

    def create(self, kind: str) -> Job:
        job = Job(secrets.token_hex(12), kind)
        with self._lock:
            self._jobs[job.id] = job
            while len(self._jobs) > self.max_jobs:
                self._jobs.popitem(last=False)
        return job

    def get(self, job_id: str) -> Job:
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            raise NotFound(f"no job {job_id!r} (unknown, or forgotten after {self.max_jobs} newer ones)")
        return job
