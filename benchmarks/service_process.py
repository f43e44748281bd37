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

from service.settings import PROJECT_ROOT

__all__ = ["rss_megabytes", "running_service"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_service(extra_env: dict[str, str] | None = None) -> Iterator[tuple[str, int]]:
    """Yields (base URL, gateway process id) once /readyz answers; stops it with SIGTERM afterwards."""
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
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the service did not become ready")
            time.sleep(0.5)
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
