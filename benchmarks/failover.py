"""Two `make run` gateways sharing S3 and Redis: what the first made, the second serves, and a job whose
gateway dies mid-run finishes on the other.

    python -m benchmarks.failover [--msssim 0.95]

Starts a real Redis (Debian's redis-server) and a real S3 server (SeaweedFS), then gateway A as
`make run` starts it (``rgic serve``: the gateway and its embedded backend in one process group) with
``RGIC_BLOB_URL``, ``RGIC_S3_ENDPOINT_URL``, the AWS credentials and ``RGIC_JOBS_URL`` set:

1. A compresses a Kodak image; its bitstream id is read back later through B;
2. an asynchronous compress of a 6.3 Mpx photo (3072×2048 of the Kodak mosaic) starts on A and A's
   worker takes it; then gateway B starts the same way;
3. once B is ready, A's whole process group (gateway and backend) is SIGKILLed while the job runs;
4. B answers the job (same id) until it is done: the seconds from the kill to the job's rerun start
   and to its end are printed; its bitstream is read and decoded through B and checked for size.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import signal
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

from benchmarks.big_images import kodak_mosaic
from benchmarks.rd_kodak import KODAK
from service.codec.images import encode_png
from tests.real_servers import gateway_process, jobs_running, redis_server, s3_server


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--msssim", type=float, default=0.95)
    args = parser.parse_args(argv)
    mosaic, _ = kodak_mosaic()
    photo = np.ascontiguousarray(mosaic[:2048, :3072])
    small = np.asarray(Image.open(KODAK / "kodim23.png").convert("RGB"))
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        work = Path(tmp)
        redis_url = stack.enter_context(redis_server(work))
        s3 = stack.enter_context(s3_server(work))
        env = {**s3.environment(), "RGIC_JOBS_URL": redis_url}
        env.pop("RGIC_BACKEND_ADDRESS", None)
        os.environ.pop("RGIC_BACKEND_ADDRESS", None)  # each gateway starts its own backend, as make run does
        a_url, a_process = stack.enter_context(gateway_process(env, work / "a", "gateway-a"))
        quality = {"msssim": str(args.msssim)}
        made = httpx.post(
            f"{a_url}/compress", files={"image": ("k.png", encode_png(small))}, data=quality, timeout=600
        )
        made.raise_for_status()
        print(f"A made kodim23 at {args.msssim}: {made.json()['bytes']} B, id {made.json()['id'][:12]}")
        accepted = httpx.post(
            f"{a_url}/compress",
            files={"image": ("photo.png", encode_png(photo))},
            data=quality,
            headers={"Prefer": "respond-async"},
            timeout=120,
        )
        assert accepted.status_code == 202, accepted.text
        job = accepted.headers["Location"]
        while jobs_running(a_url) < 1:
            time.sleep(0.2)
        print(f"A runs the 6.3 Mpx job {job}; starting B")
        b_url, _ = stack.enter_context(gateway_process(env, work / "b", "gateway-b"))
        served = httpx.get(f"{b_url}/bitstreams/{made.json()['id']}", timeout=60)
        print(f"B serves A's bitstream: HTTP {served.status_code}, {len(served.content)} B")
        state = httpx.get(f"{b_url}{job}", timeout=10).json()
        print(f"before the kill: stage {state['stage']!r}, progress {state['progress']}")
        os.killpg(a_process.pid, signal.SIGKILL)
        killed = time.monotonic()
        print("A's process group SIGKILLed")
        rerun_at = None
        while state["status"] not in ("done", "failed"):
            time.sleep(1)
            state = httpx.get(f"{b_url}{job}", timeout=10).json()
            if rerun_at is None and jobs_running(b_url) >= 1:
                rerun_at = time.monotonic() - killed
                print(f"B took the job {rerun_at:.1f} s after the kill")
        done_after = time.monotonic() - killed
        print(f"job {state['status']} {done_after:.1f} s after the kill; stages: {state['stages']}")
        result = state["result"]
        blob = httpx.get(f"{b_url}/bitstreams/{result['id']}", timeout=60)
        decoded = httpx.get(f"{b_url}/decompress/{result['id']}", timeout=900)
        size = Image.open(io.BytesIO(decoded.content)).size
        print(
            f"bitstream through B: HTTP {blob.status_code}, {len(blob.content)} B "
            f"(report {result['bytes']}), "
            f"MS-SSIM {result['msssim']:.4f}, coder {result.get('coder')}; decoded {size[0]}x{size[1]} "
            f"(HTTP {decoded.status_code})"
        )


if __name__ == "__main__":
    main()
