"""Jobs in memory: run as tasks, errors recorded as the synchronous call's, the oldest forgotten."""

from __future__ import annotations

import asyncio

import pytest

from service.errors import NotAnImage, NotFound
from service.jobs import InProcessJobs


def test_the_oldest_jobs_are_forgotten() -> None:
    jobs = InProcessJobs(max_jobs=2)
    first, *_ = [jobs.create("compress") for _ in range(3)]
    with pytest.raises(NotFound):
        asyncio.run(jobs.get(first.id))


def test_submitted_work_runs_and_ends_done_or_failed() -> None:
    async def perform(kind: str, data: bytes, params: dict, progress) -> dict:
        progress("working", 0.5)
        if data == b"bad":
            raise NotAnImage("not an image")
        return {"kind": kind, "size": len(data), **params}

    async def scenario() -> tuple[dict, dict]:
        jobs = InProcessJobs()
        await jobs.start(perform)
        good = await jobs.submit("compress", b"abc", {"n": 1})
        bad = await jobs.submit("compress", b"bad", {})
        for _ in range(100):
            if (await jobs.get(good.id)).ended and (await jobs.get(bad.id)).ended:
                break
            await asyncio.sleep(0.01)
        return (await jobs.get(good.id)).to_json(), (await jobs.get(bad.id)).to_json()

    good, bad = asyncio.run(scenario())
    assert good["status"] == "done" and good["result"] == {"kind": "compress", "size": 3, "n": 1}
    assert good["stages"] == ["decoding the upload", "working", "done"][:2]
    assert bad["status"] == "failed" and bad["http_status"] == 415
