"""ASGI middleware: request ids and access lines, request metrics, and refusing over-size bodies
before they are read in full."""

from __future__ import annotations

import json
import logging
import re
import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service import metrics
from service.logs import REQUEST_ID

__all__ = ["MetricsMiddleware", "RequestIdMiddleware", "UploadLimitMiddleware"]

access_log = logging.getLogger("rgic.access")

#: a client's X-Request-ID is kept when it looks like an id (no spaces, quotes or control characters)
_GOOD_ID = re.compile(r"^[A-Za-z0-9._:/+=-]{1,128}$")


class _HttpMiddleware:
    """Passes everything but HTTP requests (lifespan, websockets) straight through; ``handle`` sees the
    requests."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await self.handle(scope, receive, send)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        raise NotImplementedError


class RequestIdMiddleware(_HttpMiddleware):
    """Every request gets an id: the client's ``X-Request-ID`` or a new one. It is answered in the same
    header and set for every log line of the request (and its backend calls and job)."""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        given = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"x-request-id"), "")
        request_id = given if _GOOD_ID.match(given) else uuid.uuid4().hex
        token = REQUEST_ID.set(request_id)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            REQUEST_ID.reset(token)


class MetricsMiddleware(_HttpMiddleware):
    """Counts requests by route template and status, times them, tracks those in flight, and ends each
    request with one access line (not for probes and scrapes, which would drown the rest)."""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        status = {"code": 500}

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        start = time.perf_counter()
        metrics.REQUESTS_IN_FLIGHT.inc()
        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            metrics.REQUESTS_IN_FLIGHT.dec()
            route = scope.get("route")
            template = getattr(route, "path", "unmatched")
            method = scope.get("method", "")
            elapsed = time.perf_counter() - start
            metrics.REQUESTS.labels(template, method, str(status["code"])).inc()
            metrics.REQUEST_LATENCY.labels(template, method).observe(elapsed)
            if scope.get("path") not in ("/metrics", "/healthz", "/readyz"):
                access_log.info(
                    "%s %s %d %.0f ms", method, scope.get("path", ""), status["code"], 1000 * elapsed
                )


class _TooLarge(Exception):
    pass


class UploadLimitMiddleware(_HttpMiddleware):
    """413 for bodies over ``max_bytes``: at once from Content-Length, else as soon as the count passes."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        super().__init__(app)
        self.max_bytes = max_bytes

    async def _refuse(self, send: Send) -> None:
        body = json.dumps(
            {
                "error": {
                    "code": "payload_too_large",
                    "message": f"request body exceeds {self.max_bytes} bytes",
                }
            }
        ).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                await self._refuse(send)
                return
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _TooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _TooLarge:
            if not started:
                await self._refuse(send)
