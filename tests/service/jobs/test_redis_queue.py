"""Jobs in a real Redis (Debian's redis-server) through SAQ: a job submitted on one backend runs on
another, its record answered by both; a job whose worker goes silent runs again; `rgic worker` alone
runs what a gateway that runs no jobs queued."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from service.errors import NotAnImage, NotFound
from service.jobs import Job
from service.jobs.redis_queue import RedisJobs
from service.main import create_app
from service.settings import PROJECT_ROOT
from service.storage import DirectoryBlobStore
from tests.conftest import LiveServer, gateway_settings
from tests.real_servers import redis_server
from tests.service.api.routes.test_compress import _png


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with redis_server(tmp_path_factory.mktemp("redis")) as url:
        yield url


async def _until_ended(jobs: RedisJobs, job_id: str, timeout: float = 60) -> Job:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = await jobs.get(job_id)
        if job.ended:
            return job
        await asyncio.sleep(0.1)
    raise AssertionError(f"job {job_id} did not end")


def test_a_job_queued_by_one_replica_runs_on_another(redis_url: str, tmp_path: Path) -> None:
    store = DirectoryBlobStore(tmp_path)

    async def perform(kind: str, data: bytes, params: dict, progress) -> dict:
        progress("working", 0.5)
        if data == b"bad":
            raise NotAnImage("not an image")
        return {"echo": data.decode(), "n": params["n"]}

    async def scenario() -> tuple[Job, Job]:
        front = RedisJobs(redis_url, store, workers=0)  # queues only
        back = RedisJobs(redis_url, store, workers=1)
        await front.start(perform)
        await back.start(perform)
        try:
            good = await front.submit("compress", b"hello", {"n": 3})
            bad = await front.submit("compress", b"bad", {"n": 0})
            return await _until_ended(front, good.id), await _until_ended(back, bad.id)
        finally:
            await front.close()
            await back.close()

    good, bad = asyncio.run(scenario())
    assert good.status == "done" and good.result == {"echo": "hello", "n": 3} and good.attempts == 1
    assert good.stages == ["decoding the upload", "working", "done"][:2] or "working" in good.stages
    assert bad.status == "failed" and bad.http_status == 415 and bad.error["code"] == "unsupported_image"


def test_unknown_jobs_are_not_found(redis_url: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        jobs = RedisJobs(redis_url, DirectoryBlobStore(tmp_path), workers=0)
        try:
            await jobs.get("f" * 24)
        finally:
            await jobs.close()

    with pytest.raises(NotFound):
        asyncio.run(scenario())


def test_a_job_whose_worker_went_silent_runs_again(redis_url: str, tmp_path: Path) -> None:
    store = DirectoryBlobStore(tmp_path)
    runs: list[str] = []

    async def hang(kind: str, data: bytes, params: dict, progress) -> dict:
        runs.append("hung")
        await asyncio.sleep(3600)
        return {}

    async def finish(kind: str, data: bytes, params: dict, progress) -> dict:
        runs.append("finished")
        return {"ok": True}

    async def scenario() -> Job:
        doomed = RedisJobs(redis_url, store, workers=1, heartbeat_seconds=2)
        await doomed.start(hang)
        job = await doomed.submit("compress", b"x", {})
        while not runs:
            await asyncio.sleep(0.05)
        # the worker dies as a SIGKILLed process would: its tasks stop, nothing is acknowledged
        for task in doomed._tasks:
            task.cancel()
        for task in doomed._worker.tasks | {t["task"] for t in doomed._worker.job_task_contexts.values()}:
            task.cancel()
        survivor = RedisJobs(redis_url, store, workers=1, heartbeat_seconds=2)
        await survivor.start(finish)
        try:
            return await _until_ended(survivor, job.id, timeout=45)
        finally:
            await survivor.close()

    job = asyncio.run(scenario())
    assert job.status == "done" and job.result == {"ok": True} and job.attempts == 2
    assert runs == ["hung", "finished"]


def test_rgic_worker_runs_the_jobs_a_gateway_queues(
    redis_url: str, backend_address: str, tmp_path: Path, kodak_image: np.ndarray
) -> None:
    env = {
        **os.environ,
        "RGIC_JOBS_URL": redis_url,
        "RGIC_BACKEND_ADDRESS": backend_address,
        "RGIC_BLOB_DIR": str(tmp_path / "blobs"),
    }
    worker = subprocess.Popen(
        [sys.executable, "-m", "service.cli", "worker"],
        env=env,
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    settings = gateway_settings(backend_address, tmp_path / "blobs", jobs_url=redis_url, job_workers=0)
    try:
        with (
            LiveServer(create_app(settings)) as gateway,
            httpx.Client(base_url=gateway.url, timeout=60) as http,
        ):
            accepted = http.post(
                "/compress",
                files={"image": ("k.png", _png(kodak_image[:64, :96]))},
                data={"msssim": "0.9"},
                headers={"Prefer": "respond-async"},
            )
            assert accepted.status_code == 202
            deadline = time.monotonic() + 120
            while (state := http.get(accepted.headers["Location"]).json())["status"] not in (
                "done",
                "failed",
            ):
                assert time.monotonic() < deadline, state
                time.sleep(0.2)
            assert state["status"] == "done", state
            assert http.get(f"/bitstreams/{state['result']['id']}").status_code == 200
    finally:
        worker.terminate()
        out, _ = worker.communicate(timeout=60)
    assert worker.returncode == 0 and "worker stopped" in out, out
