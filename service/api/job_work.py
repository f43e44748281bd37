"""What each kind of asynchronous job does: the synchronous route's work, from the job's input and
parameters alone (a job may run on another replica, or again after its worker died)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from service.api.deps import Services
from service.api.routes.compare import compare_upload
from service.api.routes.compress import compress_upload
from service.api.routes.decompress import decompress_to_blob
from service.codec.rate_control import Target
from service.errors import BackendUnavailable, BadParameter
from service.jobs import Perform

__all__ = ["CAPACITY_WAITS", "perform_for"]

#: times a job waits for room when the service is at capacity, before it fails with that 503
CAPACITY_WAITS = 30


def perform_for(svc: Services) -> Perform:
    """The function job backends call to run a job of ``svc``."""

    async def perform(kind: str, data: bytes, params: dict, progress: Callable[[str, float], None]) -> dict:
        for wait in range(CAPACITY_WAITS + 1):
            try:
                return await _perform(svc, kind, data, params, progress)
            except BackendUnavailable as error:  # a queued job waits its turn; a caller would retry
                if wait == CAPACITY_WAITS:
                    raise
                progress("waiting for capacity", 0.0)
                await asyncio.sleep(float(error.headers.get("Retry-After", 2)))
        raise AssertionError("unreachable")

    return perform


async def _perform(
    svc: Services, kind: str, data: bytes, params: dict, progress: Callable[[str, float], None]
) -> dict:
    if kind == "compress":
        return (await compress_upload(svc, data, Target(**params["target"]), progress)).body
    if kind == "compare":
        return await compare_upload(svc, data, Target(**params["target"]), progress)
    if kind == "decompress":
        return await decompress_to_blob(svc, data, params.get("iterations"), progress)
    raise BadParameter(f"unknown job kind {kind!r}")
