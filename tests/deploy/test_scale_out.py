"""The proof that the gateway scales out: real Redis, a real S3 server (SeaweedFS), two gateways behind
Debian's nginx and one embedded backend, all processes on loopback. A replica is SIGKILLed while it runs
a job: every job still completes on the other, every bitstream made before or after the kill is read
through nginx, and clients only ever see 200, 202 or 503."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time

import httpx
import numpy as np
import pytest

from service.codec.images import encode_png
from tests.real_servers import (
    backend_process,
    gateway_process,
    jobs_running,
    nginx_server,
    redis_server,
    s3_server,
)

OK = {200, 202, 503}
ASYNC = {"Prefer": "respond-async"}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory):
    workdir = tmp_path_factory.mktemp("cluster")
    with contextlib.ExitStack() as stack:
        redis_url = stack.enter_context(redis_server(workdir))
        s3 = stack.enter_context(s3_server(workdir))
        backend = stack.enter_context(backend_process(workdir))
        env = {
            **s3.environment(),
            "RGIC_BACKEND_ADDRESS": backend,
            "RGIC_JOBS_URL": redis_url,
            "RGIC_JOB_HEARTBEAT_SECONDS": "6",
            "RGIC_LADDER_MAX_PIXELS": "0",  # the proof is about state, not the ladder: save the CPU
        }
        gateways = [stack.enter_context(gateway_process(env, workdir, f"gateway-{i}")) for i in (1, 2)]
        lb = stack.enter_context(nginx_server([url for url, _ in gateways], workdir))
        yield lb, gateways, s3


def test_a_replica_killed_mid_job_loses_nothing(cluster, kodak_image: np.ndarray) -> None:
    lb, gateways, _ = cluster
    statuses: list[int] = []
    with httpx.Client(base_url=lb, timeout=900) as http:

        def post(image: np.ndarray, headers: dict | None = None) -> httpx.Response:
            response = http.post(
                "/compress",
                files={"image": ("x.png", encode_png(image))},
                data={"msssim": "0.95"},
                headers=headers,
            )
            statuses.append(response.status_code)
            return response

        before = post(kodak_image[:128, :192])
        assert before.status_code == 200
        # the bitstream is in S3, not on a replica's disk: each replica serves it
        for url, _ in gateways:
            assert httpx.get(f"{url}/bitstreams/{before.json()['id']}", timeout=30).status_code == 200

        accepted = [post(kodak_image[:, i * 96 : i * 96 + 512], ASYNC) for i in range(3)]
        assert [a.status_code for a in accepted] == [202, 202, 202]
        jobs = [a.headers["Location"] for a in accepted]

        # find the replica running a job, let it run a little, then SIGKILL its whole process group
        deadline = time.monotonic() + 120
        victim = None
        while victim is None and time.monotonic() < deadline:
            victim = next((g for g in gateways if jobs_running(g[0]) > 0), None)
            time.sleep(0.2)
        assert victim is not None, "no replica picked up a job"
        time.sleep(2)
        os.killpg(victim[1].pid, signal.SIGKILL)
        killed_at = time.monotonic()

        # clients keep working through nginx while the job comes back
        during: list[httpx.Response] = []
        worker = threading.Thread(target=lambda: during.append(post(kodak_image[128:256, :192])))
        worker.start()

        results = {}
        while len(results) < len(jobs):
            assert time.monotonic() - killed_at < 60 + 3 * 120, f"jobs not done: {set(jobs) - set(results)}"
            for job in jobs:
                if job in results:
                    continue
                response = http.get(job)
                statuses.append(response.status_code)
                state = response.json()
                if state["status"] in ("done", "failed"):
                    results[job] = state
            time.sleep(0.5)
        worker.join()

        assert all(state["status"] == "done" for state in results.values()), results
        for state in [*results.values(), {"result": before.json()}, {"result": during[0].json()}]:
            blob = http.get(f"/bitstreams/{state['result']['id']}")
            statuses.append(blob.status_code)
            assert blob.status_code == 200 and len(blob.content) == state["result"]["bytes"]
            decoded = http.get(f"/decompress/{state['result']['id']}")
            assert decoded.status_code == 200 and decoded.headers["content-type"] == "image/png"
    assert set(statuses) <= OK, statuses
