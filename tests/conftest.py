"""Shared fixtures: the real embedded backend over loopback gRPC and the real gateway over HTTP."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import httpx
import numpy as np
import pytest
import uvicorn
from PIL import Image

from service.backend.client import BackendClient
from service.backend.embedded import serve
from service.main import create_app
from service.settings import PROJECT_ROOT, Settings

KODAK = PROJECT_ROOT.parent / "shared" / "data" / "kodak"
MODEL_CONFIG = PROJECT_ROOT / "models" / "models.config"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def kodak_image() -> np.ndarray:
    """kodim23 (768x512) as uint8 RGB."""
    return np.asarray(Image.open(KODAK / "kodim23.png").convert("RGB"))


@pytest.fixture(scope="session")
def backend_address() -> Iterator[str]:
    """The embedded backend serving the shipped models, on a loopback port."""
    server = serve(MODEL_CONFIG, "127.0.0.1", 0, 512 * 1024 * 1024)
    yield f"127.0.0.1:{server.bound_port}"
    server.stop(grace=None)


@pytest.fixture(scope="session")
def backend_client(backend_address: str) -> Iterator[BackendClient]:
    client = BackendClient(backend_address)
    yield client
    client.close()


class LiveServer:
    """uvicorn serving an app in a background thread on a free loopback port."""

    def __init__(self, app) -> None:
        self.port = free_port()
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("gateway did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def gateway_settings(backend_address: str, blob_dir: Path, **overrides: object) -> Settings:
    return Settings(
        **{"backend_address": backend_address, "blob_dir": blob_dir, "backend_retries": 1, **overrides}
    )


@pytest.fixture(scope="session")
def gateway(backend_address: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """The gateway over real HTTP, wired to the embedded backend."""
    settings = gateway_settings(backend_address, tmp_path_factory.mktemp("blobs"))
    with LiveServer(create_app(settings)) as live:
        yield live


@pytest.fixture(scope="session")
def http(gateway: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway.url, timeout=120) as client:
        yield client
