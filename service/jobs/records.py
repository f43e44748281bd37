"""A job's record: what ``GET /jobs/{id}`` answers, the same whichever backend holds it."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field

from service.errors import ServiceError

__all__ = ["Job", "new_job_id"]


def new_job_id() -> str:
    return secrets.token_hex(12)


@dataclass
class Job:
    """One asynchronous request: ``status`` queued → running → done or failed."""

    id: str
    kind: str
    status: str = "queued"
    stage: str = "queued"
    progress: float = 0.0
    result: dict | None = None
    #: the error body the synchronous call would have answered, and its HTTP status
    error: dict | None = None
    http_status: int | None = None
    created: float = field(default_factory=time.time)
    #: Every stage entered so far, in order: a client polling now and then still learns what ran.
    stages: list[str] = field(default_factory=list)
    #: times a worker started it (more than one when a worker died while running it)
    attempts: int = 0

    def report_progress(self, stage: str, share: float) -> None:
        """Called from the worker: the stage it entered and the share of the work done (0-1)."""
        self.status, self.stage = "running", stage
        self.progress = max(self.progress, min(1.0, share))
        if not self.stages or self.stages[-1] != stage:
            self.stages.append(stage)

    def finish(self, result: dict) -> None:
        self.result, self.status, self.stage, self.progress = result, "done", "done", 1.0

    def fail(self, error: ServiceError) -> None:
        self.error = {"code": error.code, "message": error.message}
        self.http_status = error.status
        self.status, self.stage = "failed", "failed"

    @property
    def ended(self) -> bool:
        return self.status in ("done", "failed")

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
            body["error"] = dict(self.error)
            body["http_status"] = self.http_status
        return body

    def to_record(self) -> dict:
        """Everything, for a store shared by replicas; ``from_record`` reads it back."""
        return {**self.to_json(), "created": self.created, "attempts": self.attempts}

    @classmethod
    def from_record(cls, record: dict) -> Job:
        return cls(
            id=record["id"],
            kind=record["kind"],
            status=record["status"],
            stage=record["stage"],
            progress=record["progress"],
            result=record.get("result"),
            error=record.get("error"),
            http_status=record.get("http_status"),
            created=record.get("created", time.time()),
            stages=list(record.get("stages", [])),
            attempts=record.get("attempts", 0),
        )
