"""Jobs in this process's memory: the default, needing nothing else; lost on restart, one replica only."""

from __future__ import annotations

import asyncio
import threading
from collections import OrderedDict

from service.errors import NotFound
from service.jobs.base import JobBackend, Perform, run_job
from service.jobs.records import Job, new_job_id

__all__ = ["MAX_JOBS", "InProcessJobs"]

MAX_JOBS = 1000


class InProcessJobs(JobBackend):
    """Jobs by id in memory, run as tasks of this process; the oldest forgotten past ``max_jobs``."""

    def __init__(self, max_jobs: int = MAX_JOBS) -> None:
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._lock = threading.Lock()
        self._running: set[asyncio.Task] = set()  # a reference keeps each task alive until it ends
        self._perform: Perform | None = None
        self.max_jobs = max_jobs

    def create(self, kind: str) -> Job:
        job = Job(new_job_id(), kind)
        with self._lock:
            self._jobs[job.id] = job
            while len(self._jobs) > self.max_jobs:
                self._jobs.popitem(last=False)
        return job

    async def start(self, perform: Perform) -> None:
        self._perform = perform

    async def submit(self, kind: str, data: bytes, params: dict) -> Job:
        if self._perform is None:
            raise RuntimeError("InProcessJobs.start was not called")
        job = self.create(kind)
        job.attempts = 1
        task = asyncio.create_task(run_job(job, self._perform, data, params))
        self._running.add(task)
        task.add_done_callback(self._running.discard)
        return job

    async def get(self, job_id: str) -> Job:
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            raise NotFound(f"no job {job_id!r} (unknown, or forgotten after {self.max_jobs} newer ones)")
        return job

    async def close(self) -> None:
        for task in list(self._running):
            task.cancel()
