"""Jobs in memory: stages recorded in order, progress never going back, the oldest forgotten."""

from __future__ import annotations

import pytest

from service.errors import NotFound, PayloadTooLarge
from service.jobs import JobRegistry


def test_a_job_records_each_stage_once_and_progress_only_rises() -> None:
    job = JobRegistry().create("compress")
    for stage, share in (
        ("decoding the upload", 0.0),
        ("encoding", 0.2),
        ("encoding", 0.1),
        ("choosing", 0.9),
    ):
        job.report_progress(stage, share)
    body = job.to_json()
    assert body["status"] == "running" and body["progress"] == 0.9
    assert body["stages"] == ["decoding the upload", "encoding", "choosing"]
    job.finish({"id": "x"})
    assert job.to_json()["status"] == "done" and job.to_json()["result"] == {"id": "x"}


def test_a_failed_job_carries_its_error_and_status() -> None:
    job = JobRegistry().create("decompress")
    job.fail(PayloadTooLarge("too big"))
    body = job.to_json()
    assert body["status"] == "failed" and body["http_status"] == 413
    assert body["error"]["message"] == "too big"


def test_the_oldest_jobs_are_forgotten() -> None:
    registry = JobRegistry(max_jobs=2)
    first, *_ = [registry.create("compress") for _ in range(3)]
    with pytest.raises(NotFound):
        registry.get(first.id)
