"""The embedded backend stopped in the middle of a load and started again: 503s while it is down, no 500s,
every bitstream served decodes, /readyz follows by itself, no gateway restart."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections import Counter

import httpx
import numpy as np

from service.main import create_app
from service.settings import PROJECT_ROOT
from tests.conftest import MODEL_CONFIG, LiveServer, free_port, gateway_settings
from tests.service.api.routes.test_compress import _png


def _start_backend(port: int) -> subprocess.Popen:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "service.backend.embedded",
            "--port",
            str(port),
            "--model-config-file",
            str(MODEL_CONFIG),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=PROJECT_ROOT,
    )
    assert "listening" in process.stdout.readline()
    return process


def test_backend_restart_under_load(tmp_path) -> None:
    port = free_port()
    backend = _start_backend(port)
    settings = gateway_settings(
        f"127.0.0.1:{port}",
        tmp_path,
        backend_retries=2,
        backend_retry_backoff_seconds=0.1,
        backend_timeout_seconds=20,
    )
    image = _png(np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8))
    statuses: Counter[int] = Counter()
    bitstreams: list[bytes] = []
    phase = {"name": "up"}
    after_restart: Counter[int] = Counter()
    stop = threading.Event()

    def client_loop(base_url: str) -> None:
        with httpx.Client(base_url=base_url, timeout=60) as client:
            while not stop.is_set():
                response = client.post(
                    "/compress",
                    files={"image": ("x.png", image, "image/png")},
                    data={"bpp": "1"},
                    headers={"Accept": "application/octet-stream"},
                )
                statuses[response.status_code] += 1
                if phase["name"] == "restarted":
                    after_restart[response.status_code] += 1
                if response.status_code == 200:
                    bitstreams.append(response.content)
                elif response.status_code == 503:
                    assert int(response.headers["Retry-After"]) > 0

    with LiveServer(create_app(settings)) as live, httpx.Client(base_url=live.url, timeout=30) as probe:
        threads = [threading.Thread(target=client_loop, args=(live.url,)) for _ in range(2)]
        for thread in threads:
            thread.start()
        try:
            time.sleep(3)
            backend.terminate()
            backend.wait(timeout=30)
            phase["name"] = "down"
            time.sleep(2)
            assert probe.get("/readyz").status_code == 503
            backend = _start_backend(port)
            phase["name"] = "restarted"
            deadline = time.monotonic() + 60
            while after_restart[200] < 3 and time.monotonic() < deadline:
                time.sleep(0.5)
            assert probe.get("/readyz").status_code == 200
            stop.set()
            for thread in threads:
                thread.join(timeout=120)
            assert set(statuses) <= {200, 503}, statuses
            assert statuses[503] > 0 and after_restart[200] >= 3, statuses
            for data in bitstreams[-5:] + bitstreams[:5]:  # made before and after the outage
                assert probe.post("/decompress", content=data).status_code == 200
            print(f"\nrequests: {dict(statuses)}; after restart: {dict(after_restart)}")
        finally:
            stop.set()
            backend.terminate()
            backend.wait(timeout=30)
