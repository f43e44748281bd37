"""Job records: stages recorded in order, progress never going back, errors as the synchronous call's,
and a record read back from its JSON is the same job."""

from __future__ import annotations

import json

from service.errors import PayloadTooLarge
from service.jobs import Job


def test_a_job_records_each_stage_once_and_progress_only_rises() -> None:
    job = Job("j1", "compress")
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
    job = Job("j2", "decompress")
    job.fail(PayloadTooLarge("too big"))
    body = job.to_json()
    assert body["status"] == "failed" and body["http_status"] == 413
    assert body["error"] == {"code": "payload_too_large", "message": "too big"}


def test_a_record_read_back_is_the_same_job() -> None:
    job = Job("j3", "compress", attempts=2)
    job.report_progress("encoding", 0.4)
    again = Job.from_record(json.loads(json.dumps(job.to_record())))
    assert again == job
    again.report_progress("encoding", 0.1)  # a rerun's early progress does not move it back
    assert again.progress == 0.4
