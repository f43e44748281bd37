"""Jobs in Redis or Valkey, shared by every replica and surviving restarts, run by SAQ workers.

Why SAQ (docs/decisions.md 33): its workers touch a running job (a heartbeat) and sweep the active list,
so a job whose worker died, SIGKILL or OOM, is queued again within seconds of its last heartbeat. arq
retries only after the job's timeout and Celery after its visibility timeout (an hour by default).

Two things live in Redis per job: SAQ's queue entry (delivery, heartbeat, retries) and our record under
``rgic:job:<id>`` (what ``GET /jobs/{id}`` answers), both expiring. The input goes to the blob store
before the job is queued, so any replica can run it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging

from redis.asyncio import Redis
from redis.exceptions import RedisError
from saq import Queue, Worker
from starlette.concurrency import run_in_threadpool

from service import metrics
from service.errors import BackendUnavailable, NotFound
from service.jobs.base import JobBackend, Perform, run_job
from service.jobs.records import Job, new_job_id
from service.logs import REQUEST_ID
from service.storage import BlobStore

__all__ = ["RedisJobs"]

log = logging.getLogger("rgic.jobs")

QUEUE_NAME = "rgic"
_RECORD = "rgic:job:{}"
#: attempts a job gets in all: a job that kills its worker every time must end, failed
ATTEMPTS = 4
#: seconds between the sweeps that find jobs whose worker went silent
SWEEP_SECONDS = 2


class _QuietWorker(Worker):
    SIGNALS = []  # uvicorn (or rgic worker) owns SIGINT and SIGTERM


class RedisJobs(JobBackend):
    """Jobs on a SAQ queue in Redis; ``workers`` of them run at once in this process (0: none)."""

    def __init__(
        self,
        url: str,
        store: BlobStore,
        *,
        workers: int = 1,
        heartbeat_seconds: int = 10,
        ttl_seconds: int = 86_400,
    ) -> None:
        self.redis = Redis.from_url(url)
        self.queue = Queue.from_url(url, name=QUEUE_NAME)
        self.store = store
        self.workers = workers
        self.heartbeat_seconds = heartbeat_seconds
        self.ttl_seconds = ttl_seconds
        self._tasks: list[asyncio.Task] = []
        self._worker: Worker | None = None

    async def _write(self, job: Job) -> None:
        await self.redis.set(_RECORD.format(job.id), json.dumps(job.to_record()), ex=self.ttl_seconds)

    async def _read(self, job_id: str) -> Job | None:
        raw = await self.redis.get(_RECORD.format(job_id))
        return Job.from_record(json.loads(raw)) if raw else None

    async def submit(self, kind: str, data: bytes, params: dict) -> Job:
        upload = await run_in_threadpool(self.store.put, data)  # stored before queued: nothing lost
        job = Job(new_job_id(), kind)
        try:
            await self._write(job)
            await self.queue.enqueue(
                "run",
                key=job.id,
                job_id=job.id,
                upload=upload,
                params=params,
                heartbeat=self.heartbeat_seconds,
                retries=ATTEMPTS,
                timeout=0,
                ttl=self.ttl_seconds,
            )
        except RedisError as error:
            raise BackendUnavailable(f"the job queue cannot be reached: {error}") from error
        return job

    async def get(self, job_id: str) -> Job:
        try:
            job = await self._read(job_id)
        except RedisError as error:
            raise BackendUnavailable(f"the job queue cannot be reached: {error}") from error
        if job is None:
            raise NotFound(f"no job {job_id!r} (unknown, or expired after {self.ttl_seconds} s)")
        return job

    async def start(self, perform: Perform) -> None:
        self._tasks.append(asyncio.create_task(self._count_queued()))
        if not self.workers:
            return

        async def run(ctx: dict, *, job_id: str, upload: str, params: dict) -> None:
            await self._run(ctx["job"], job_id, upload, params, perform)

        run.__qualname__ = "run"
        self._worker = _QuietWorker(
            self.queue,
            functions=[run],
            concurrency=self.workers,
            timers={"sweep": SWEEP_SECONDS, "abort": 1, "schedule": 1},
            shutdown_grace_period_s=0,
        )
        self._tasks.append(asyncio.create_task(self._worker.start()))

    async def _run(self, queued, job_id: str, upload: str, params: dict, perform: Perform) -> None:
        job = await self._read(job_id)
        if job is None or job.ended:  # expired, or finished by a worker that died before acknowledging
            return
        REQUEST_ID.set(params.get("request_id", job_id))
        job.attempts += 1
        if job.attempts > 1:
            log.warning("job %s runs again (attempt %d): its worker went silent", job_id, job.attempts)

        finished = asyncio.Event()

        async def beat() -> None:  # our record for GET /jobs, SAQ's touch for the sweep
            while not finished.is_set():
                await self._write(job)
                await queued.update()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(finished.wait(), max(1.0, self.heartbeat_seconds / 3))

        # stopped by the event, not cancelled: a cancel inside a Redis call can stall for seconds
        beating = asyncio.create_task(beat())
        try:
            data = await run_in_threadpool(self.store.get, upload)
            await run_job(job, perform, data, params)
        finally:
            finished.set()
            await beating
        await self._write(job)

    async def _count_queued(self) -> None:
        while True:
            with contextlib.suppress(RedisError):
                metrics.JOBS_QUEUED.set(await self.queue.count("queued"))
            await asyncio.sleep(5)

    async def check(self) -> None:
        try:
            await self.redis.ping()
        except RedisError as error:
            raise BackendUnavailable(f"the job queue cannot be reached: {error}") from error

    async def close(self) -> None:
        if self._worker is not None:
            await self._worker.stop()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        with contextlib.suppress(RedisError):
            await self.queue.disconnect()
            await self.redis.aclose()
