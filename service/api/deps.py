"""Shared dependencies of the routes: the services on ``app.state``, API keys, and the job limiter."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from service.backend.client import BackendClient
from service.codec.pipeline import ImageCodec
from service.errors import BackendUnavailable, Unauthorized
from service.settings import Settings
from service.storage import BlobStore

__all__ = ["JobLimiter", "Services", "require_api_key", "services"]

T = TypeVar("T")


class JobLimiter:
    """Runs codec jobs in worker threads, at most ``concurrency`` at once and ``queue`` waiting.

    Past that, a request is refused at once with 503 (and Retry-After) instead of timing out.
    """

    def __init__(self, concurrency: int, queue: int) -> None:
        self._slots = threading.Semaphore(concurrency)
        self._admitted = threading.BoundedSemaphore(concurrency + queue)

    def _admit(self) -> None:
        if not self._admitted.acquire(blocking=False):
            raise BackendUnavailable("the service is at capacity; retry shortly", retry_after_seconds=1)

    async def run(self, function: Callable[..., T], *args: object) -> T:
        """Run ``function(*args)`` in a worker thread once a slot is free (503 at once when full)."""
        self._admit()
        try:
            return await run_in_threadpool(self._run_in_slot, function, *args)
        finally:
            self._admitted.release()

    def _run_in_slot(self, function: Callable[..., T], *args: object) -> T:
        with self._slots:
            return function(*args)

    def stream(self, items: Iterator[T]) -> Iterator[T]:
        """Admit a streamed job now (503 at once when full); it holds a slot while it produces."""
        self._admit()

        def produce() -> Iterator[T]:
            try:
                with self._slots:
                    yield from items
            finally:
                self._admitted.release()

        return produce()


@dataclass
class Services:
    settings: Settings
    client: BackendClient
    codec: ImageCodec
    store: BlobStore
    limiter: JobLimiter


def services(request: Request) -> Services:
    return request.app.state.services


def require_api_key(request: Request) -> None:
    """Checks ``Authorization: Bearer <key>`` when API keys are configured."""
    keys = request.app.state.services.settings.api_keys
    if not keys:
        return
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or token not in keys:
        raise Unauthorized("missing or unknown API key: send 'Authorization: Bearer <key>'")
