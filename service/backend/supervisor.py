"""Keep the embedded backend running: start it as a child process and restart it when it dies.

``rgic serve`` without ``RGIC_BACKEND_ADDRESS`` runs the model in a separate process, which the kernel's
OOM killer may end. The supervisor starts it on a fixed loopback port, so the gateway's gRPC channel
reconnects to the new process by itself; while it is down, calls fail as UNAVAILABLE (answered 503 with
``Retry-After``) and ``/readyz`` says 503. Restarts back off (1, 2, 4 … 30 s; back to 1 s after a minute
up), are logged and counted in ``rgic_backend_restarts_total``.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from service.metrics import BACKEND_RESTARTS

__all__ = ["BackendSupervisor"]

log = logging.getLogger("rgic.backend")

FIRST_BACKOFF_SECONDS = 1.0
MAX_BACKOFF_SECONDS = 30.0
#: A backend up this long is healthy again: the next failure restarts it after the first backoff.
STABLE_SECONDS = 60.0


def stop_process(process: subprocess.Popen, timeout: float = 10) -> None:
    """SIGTERM ``process`` and wait for it; SIGKILL if it has not exited within ``timeout`` seconds."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class BackendSupervisor:
    """The embedded backend as a supervised child process on ``host``:``port``; with port 0, the port
    the first start binds (chosen by the backend itself, so no other process can take it in between),
    kept for every restart."""

    def __init__(self, config_file: Path, host: str = "127.0.0.1", port: int = 0) -> None:
        self.config_file = config_file
        self.host = host
        self.port = port
        self.process: subprocess.Popen | None = None
        self.restarts = 0
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._watcher: threading.Thread | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def _launch(self) -> subprocess.Popen:
        """Start the backend and wait until it listens (the model loaded); raises if it exits first."""
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "service.backend.embedded",
                "--host",
                self.host,
                "--port",
                str(self.port),
                "--model-config-file",
                str(self.config_file),
            ],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")},
        )
        with self._lock:
            self.process = process
        assert process.stdout is not None
        try:
            for line in process.stdout:
                if "listening on" in line:
                    self.port = int(line.strip().rsplit(":", 1)[-1])
                    return process
        except BaseException:  # stopped while the model loads: take the backend down too, not orphan it
            stop_process(process)
            raise
        raise RuntimeError(f"embedded backend exited with code {process.wait()} before listening")

    def start(self) -> None:
        """Start the backend (blocks while the model loads), then watch it in a background thread."""
        self._launch()
        self._watcher = threading.Thread(target=self._watch, name="backend-supervisor", daemon=True)
        self._watcher.start()

    def _watch(self) -> None:
        backoff = FIRST_BACKOFF_SECONDS
        while not self._stopping.is_set():
            process = self.process
            assert process is not None
            started = time.monotonic()
            code = process.wait()
            if self._stopping.is_set():
                return
            if time.monotonic() - started > STABLE_SECONDS:
                backoff = FIRST_BACKOFF_SECONDS
            log.error("embedded backend exited with code %s; restarting in %.0f s", code, backoff)
            if self._stopping.wait(backoff):
                return
            backoff = min(2 * backoff, MAX_BACKOFF_SECONDS)
            try:
                self._launch()
            except RuntimeError as error:
                log.error("%s", error)
                continue
            self.restarts += 1
            BACKEND_RESTARTS.inc()
            log.warning("embedded backend restarted on %s (restart %d)", self.address, self.restarts)

    def stop(self) -> None:
        """Stop watching and take the backend down."""
        self._stopping.set()
        with self._lock:
            process = self.process
        if process is not None:
            stop_process(process)
        if self._watcher is not None:
            self._watcher.join(timeout=5)
