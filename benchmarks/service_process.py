"""Start the service as `make run` does (``rgic serve``: gateway + embedded backend) for benchmarks."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx

from service.backend.client import BackendClient
from service.backend.embedded import serve
from service.codec.pipeline import ImageCodec
from service.settings import PROJECT_ROOT, Settings
from service.wiring import backend_client, image_codec

__all__ = ["embedded_codec", "rss_megabytes", "running_service", "start_service", "wait_until_ready"]


@contextlib.contextmanager
def embedded_codec(settings: Settings) -> Iterator[tuple[ImageCodec, BackendClient]]:
    """The gateway's codec in this process over loopback gRPC to an embedded backend in this process
    (what the benchmarks measure the codec with, without HTTP); stopped on leaving."""
    server = serve(
        settings.model_config_file,
        "127.0.0.1",
        0,
        settings.grpc_max_message_bytes,
        mixed_precision=settings.embedded_mixed_precision,
    )
    client = backend_client(settings, f"127.0.0.1:{server.bound_port}")
    try:
        yield image_codec(settings, client), client
    finally:
        client.close()
        server.stop(grace=None)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_service(extra_env: dict[str, str] | None = None) -> tuple[subprocess.Popen, str]:
    """Start ``rgic serve`` on a free loopback port as `make run` does; returns the process and its URL."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "RGIC_BACKEND_ADDRESS"}
    env.update(
        {
            "TF_CPP_MIN_LOG_LEVEL": "3",
            "RGIC_BLOB_DIR": str(PROJECT_ROOT / "var" / "bench-blobs"),
            **(extra_env or {}),
        }
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "service.cli", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=PROJECT_ROOT,
    )
    return process, f"http://127.0.0.1:{port}"


def wait_until_ready(process: subprocess.Popen, url: str, timeout: float = 120) -> None:
    """Poll ``url``/readyz until it answers 200; raises if the process exits or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("the service did not become ready")
        time.sleep(0.5)


@contextlib.contextmanager
def running_service(extra_env: dict[str, str] | None = None) -> Iterator[tuple[str, int]]:
    """Yields (base URL, gateway process id) once /readyz answers; stops it with SIGTERM afterwards."""
    process, url = start_service(extra_env)
    try:
        wait_until_ready(process, url)
        yield url, process.pid
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)


def rss_megabytes(pid: int) -> float:
    """Resident memory of a process, from /proc."""
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")
