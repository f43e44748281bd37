"""Load test: concurrent clients compressing and decompressing Kodak images against the running service.

    python -m benchmarks.load --clients 4 --minutes 3      # or: make load

Starts the service as `make run` does, runs for a bounded time on loopback only, then reports
throughput, latency percentiles, errors, and the gateway's memory after warm-up and at the end.
"""

from __future__ import annotations

import argparse
import io
import threading
import time
from collections import Counter

import httpx
import numpy as np
from PIL import Image

from benchmarks.rd_kodak import KODAK
from benchmarks.service_process import rss_megabytes, running_service


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--warmup-seconds", type=float, default=30.0)
    parser.add_argument(
        "--crop", type=int, default=256, help="side of the Kodak crops sent (0 = whole images)"
    )
    args = parser.parse_args(argv)

    images = []
    for path in sorted(KODAK.glob("*.png")):
        im = Image.open(path).convert("RGB")
        if args.crop:
            im = im.crop((0, 0, args.crop, args.crop))
        buffer = io.BytesIO()
        im.save(buffer, format="PNG")
        images.append(buffer.getvalue())

    latencies: dict[str, list[float]] = {"compress": [], "decompress": []}
    statuses: Counter[str] = Counter()
    lock = threading.Lock()
    stop = threading.Event()

    def client_loop(url: str, seed: int) -> None:
        rng = np.random.default_rng(seed)
        with httpx.Client(base_url=url, timeout=120) as client:
            while not stop.is_set():
                body = images[rng.integers(len(images))]
                target = {"msssim": str(rng.choice([0.85, 0.9, 0.95]))}
                start = time.perf_counter()
                response = client.post(
                    "/compress", files={"image": ("k.png", body, "image/png")}, data=target
                )
                elapsed = time.perf_counter() - start
                with lock:
                    statuses[f"compress {response.status_code}"] += 1
                    latencies["compress"].append(elapsed)
                if response.status_code != 200:
                    continue
                start = time.perf_counter()
                decoded = client.get(response.json()["urls"]["decompress"])
                with lock:
                    statuses[f"decompress {decoded.status_code}"] += 1
                    latencies["decompress"].append(time.perf_counter() - start)

    with running_service({"RGIC_MAX_CONCURRENT_REQUESTS": str(args.clients)}) as (url, pid):
        threads = [
            threading.Thread(target=client_loop, args=(url, i), daemon=True) for i in range(args.clients)
        ]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        time.sleep(args.warmup_seconds)
        rss_warm = rss_megabytes(pid)
        with lock:
            done_warm = sum(statuses.values())
        samples = [rss_warm]
        deadline = started + args.warmup_seconds + 60 * args.minutes
        while time.perf_counter() < deadline:
            time.sleep(10)
            samples.append(rss_megabytes(pid))
        stop.set()
        for thread in threads:
            thread.join(timeout=300)
        elapsed = time.perf_counter() - started
        rss_end = rss_megabytes(pid)

    total = sum(statuses.values())
    errors = sum(n for k, n in statuses.items() if not k.endswith(" 200"))
    print(
        f"clients {args.clients}, {elapsed / 60:.1f} min ({args.warmup_seconds:.0f} s warm-up), "
        f"Kodak crops {args.crop or 'whole'} px"
    )
    print(f"requests {total} ({total / elapsed:.2f}/s), after warm-up {total - done_warm}; errors {errors}")
    print(f"statuses {dict(statuses)}")
    for name, values in latencies.items():
        if values:
            p50, p95, p99 = np.percentile(values, [50, 95, 99])
            print(f"{name}: p50 {p50:.2f} s, p95 {p95:.2f} s, p99 {p99:.2f} s ({len(values)} requests)")
    growth = 100 * (rss_end - rss_warm) / rss_warm
    print(
        f"gateway RSS: {rss_warm:.0f} MB after warm-up, {rss_end:.0f} MB at the end ({growth:+.1f}%), "
        f"max {max(samples):.0f} MB"
    )


if __name__ == "__main__":
    main()
