"""The shipped nginx config, run by Debian's nginx: it passes the syntax check, and a POST answered 503
by a replica at capacity (nothing stored yet) is replayed on another replica, body and all."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

from tests.real_servers import nginx_server


@contextlib.contextmanager
def _replica(status: int, seen: list[tuple[int, str, bytes]]) -> Iterator[str]:
    """A plain HTTP server answering every request with ``status``, recording what it was sent."""

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            seen.append((status, self.headers.get("x-request-id", ""), body))
            payload = json.dumps({"status": status}).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = _answer  # noqa: N815 (the names http.server calls)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


def test_an_admission_503_is_replayed_on_the_other_replica(tmp_path: Path) -> None:
    seen: list[tuple[int, str, bytes]] = []
    with _replica(503, seen) as busy, _replica(200, seen) as free, nginx_server([busy, free], tmp_path) as lb:
        for i in range(4):  # whichever replica nginx tries first, the client gets the free one's 200
            body = f"upload {i}".encode() * 1000
            response = httpx.post(f"{lb}/compress", content=body, headers={"X-Request-ID": f"req-{i}"})
            assert response.status_code == 200
            assert seen[-1] == (200, f"req-{i}", body)  # the whole body, and the client's request id
        assert any(status == 503 for status, _, _ in seen)  # the busy replica was tried, and passed over


def test_when_every_replica_is_busy_the_client_gets_the_503(tmp_path: Path) -> None:
    seen: list[tuple[int, str, bytes]] = []
    with _replica(503, seen) as one, _replica(503, seen) as two, nginx_server([one, two], tmp_path) as lb:
        response = httpx.post(f"{lb}/compress", content=b"x")
        assert response.status_code == 503
        assert seen and all(s[1] for s in seen)  # nginx made a request id when the client sent none
