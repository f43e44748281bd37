"""Shared dependencies of the routes: the services on ``app.state``, API keys, and the job limiter."""

from __future__ import annotations

import hmac
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from service.backend.client import BackendClient
from service.codec.pipeline import ImageCodec
from service.errors import BackendUnavailable, Unauthorized
from service.jobs import JobBackend, open_jobs
from service.memory import release_free_memory
from service.settings import Settings
from service.storage import BlobStore
from service.wiring import backend_client, blob_store, image_codec

__all__ = ["JobLimiter", "Services", "open_services", "require_api_key", "services"]

T = TypeVar("T")

#: Jobs from this size up hand the memory they freed back to the system when they end (service/memory.py).
TRIM_AFTER_PIXELS = 2_000_000


class JobLimiter:
    """Runs codec jobs in worker threads, at most ``concurrency`` at once and ``queue`` waiting, and at most
    ``pixel_budget`` pixels in flight (admitted jobs): memory grows with the pixels being coded, not with
    the number of requests.

    Past either limit, a request is refused at once with 503 (and Retry-After) instead of timing out or
    exhausting memory. A job bigger than the whole budget is admitted when nothing else is in flight.
    """

    def __init__(self, concurrency: int, queue: int, pixel_budget: int = 0) -> None:
        self._slots = threading.Semaphore(concurrency)
        self._admitted = threading.BoundedSemaphore(concurrency + queue)
        self.pixel_budget = pixel_budget
        self._pixels_in_flight = 0
        self._jobs_in_flight = 0
        self._lock = threading.Lock()

    def _admit(self, pixels: int = 0) -> None:
        if not self._admitted.acquire(blocking=False):
            raise BackendUnavailable("the service is at capacity; retry shortly", retry_after_seconds=1)
        with self._lock:
            over = self.pixel_budget and self._pixels_in_flight + pixels > self.pixel_budget
            if over and self._jobs_in_flight:
                self._admitted.release()
                raise BackendUnavailable(
                    f"the service is coding {self._pixels_in_flight} pixels, and this image's {pixels} would "
                    f"pass its budget of {self.pixel_budget}; retry shortly",
                    retry_after_seconds=2,
                )
            self._pixels_in_flight += pixels
            self._jobs_in_flight += 1

    def _release(self, pixels: int = 0) -> None:
        with self._lock:
            self._pixels_in_flight -= pixels
            self._jobs_in_flight -= 1
        self._admitted.release()
        if pixels >= TRIM_AFTER_PIXELS:
            release_free_memory()

    async def run(self, function: Callable[..., T], *args: object, pixels: int = 0) -> T:
        """Run ``function(*args)`` in a worker thread once a slot is free (503 at once when full);
        ``pixels`` is what the job codes, counted against the pixel budget while it runs."""
        self._admit(pixels)
        try:
            return await run_in_threadpool(self._run_in_slot, function, *args)
        finally:
            self._release(pixels)

    def _run_in_slot(self, function: Callable[..., T], *args: object) -> T:
        with self._slots:
            return function(*args)

    def stream(self, items: Iterator[T], pixels: int = 0) -> Iterator[T]:
        """Admit a streamed job now (503 at once when full); it holds a slot while it produces."""
        self._admit(pixels)

        def produce() -> Iterator[T]:
            try:
                with self._slots:
                    yield from items
            finally:
                self._release(pixels)

        return produce()


@dataclass
class Services:
    settings: Settings
    client: BackendClient
    codec: ImageCodec
    store: BlobStore
    limiter: JobLimiter
    jobs: JobBackend


def open_services(settings: Settings, job_workers: int | None = None) -> Services:
    """Everything a gateway (or ``rgic worker``) runs on: backend client, codec, blob store, limiter and
    jobs (``job_workers`` overrides ``settings.job_workers``). Jobs are started by the caller."""
    client = backend_client(settings)
    store = blob_store(settings)
    return Services(
        settings=settings,
        client=client,
        codec=image_codec(settings, client),
        store=store,
        limiter=JobLimiter(
            settings.max_concurrent_requests,
            queue=2 * settings.max_concurrent_requests,
            pixel_budget=settings.max_pixels_in_flight,
        ),
        jobs=open_jobs(settings, store, job_workers),
    )


def services(request: Request) -> Services:
    return request.app.state.services


def require_api_key(request: Request) -> None:
    """Checks ``Authorization: Bearer <key>`` when API keys are configured."""
    keys = request.app.state.services.settings.api_keys
    if not keys:
        return
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    # every key compared, each in constant time: timing tells nothing of a key or of which one matched
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(token.encode(), key.encode())
    if scheme.lower() != "bearer" or not matched:
        raise Unauthorized("missing or unknown API key: send 'Authorization: Bearer <key>'")
