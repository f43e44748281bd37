"""A 24 MP photo through the running service: memory of gateway and backend, four at once, and the
gateway's memory after the burst.

    python -m benchmarks.big_photo [--concurrent 4] [--target msssim=0.95]    # default: the service's

Starts ``rgic serve`` as `make run` does (the gateway supervises the embedded backend, a separate
process). The photo is 6000×4000 (the default ``RGIC_MAX_PIXELS``): the 12 MP Kodak mosaic, mirrored
2×2 and cropped, sent as a JPEG (quality 95) as a phone would. Memory is the resident set of both
processes, sampled every 0.2 s:

1. one compress, then one decompress of its bitstream: peak above idle (gateway + backend);
The idle level is taken after one Kodak image compressed and decoded (a service that has served
ordinary requests).

2. ``--concurrent`` compress requests at once: each answers 200 or 503 with Retry-After, no process
   dies, every 200's bitstream decodes;
3. the gateway's resident memory after the burst against before it.
"""

from __future__ import annotations

import argparse
import io
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

from benchmarks.big_images import kodak_mosaic
from benchmarks.rd_kodak import KODAK
from benchmarks.service_process import rss_megabytes, running_service
from service.codec.rate_control import parse_target

WIDTH, HEIGHT = 6000, 4000


def big_photo_jpeg() -> bytes:
    """The 6000×4000 test photo as a JPEG file."""
    mosaic, _ = kodak_mosaic()
    tiled = np.concatenate([mosaic, mosaic[:, ::-1]], axis=1)
    tiled = np.concatenate([tiled, tiled[::-1]], axis=0)[:HEIGHT, :WIDTH]
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(tiled)).save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


def _children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def _total_rss(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            total += rss_megabytes(pid)
        except (OSError, RuntimeError):
            pass
    return total


class PeakSampler:
    """The largest sum of resident memory of ``pids()`` seen while running, every 0.2 s, and the
    largest of the first process (the gateway) alone."""

    def __init__(self, pids: Callable[[], list[int]]) -> None:
        self.pids, self.peak, self.first_peak = pids, 0.0, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            pids = self.pids()
            self.peak = max(self.peak, _total_rss(pids))
            self.first_peak = max(self.first_peak, _total_rss(pids[:1]))
            time.sleep(0.2)

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--target", default="default", help="kind=value, or default (no field)")
    parser.add_argument("--concurrent", type=int, default=4)
    args = parser.parse_args(argv)
    photo = big_photo_jpeg()
    print(f"test photo: {WIDTH}x{HEIGHT} JPEG, {len(photo)} bytes; target {args.target}")
    form = {}
    if args.target != "default":
        target = parse_target(args.target)
        form = {target.kind: str(target.value)}
    with running_service() as (url, gateway), httpx.Client(base_url=url, timeout=1800) as client:
        backends = _children(gateway)
        pids = lambda: [gateway, *_children(gateway)]  # noqa: E731 - the backend may be restarted
        # Warm-up, as a service that has served ordinary requests: one Kodak image there and back.
        warm = client.post(
            "/compress", files={"image": ("k.png", (KODAK / "kodim01.png").read_bytes())}, data=form
        )
        client.get(warm.json()["urls"]["decompress"])
        idle, idle_gateway = _total_rss(pids()), rss_megabytes(gateway)
        print(f"idle: gateway {idle_gateway:.0f} MB, backend {idle - idle_gateway:.0f} MB")

        with PeakSampler(pids) as sampler:
            start = time.perf_counter()
            response = client.post("/compress", files={"image": ("big.jpg", photo)}, data=form)
            compress_seconds = time.perf_counter() - start
        report = response.json()
        assert response.status_code == 200, response.text
        print(
            f"compress: {compress_seconds:.1f} s, {report['bytes']} bytes, "
            f"SSIMULACRA 2 {report['ssimulacra2']}, MS-SSIM {report['msssim']:.4f}, coder {report['coder']}, "
            f"met {report['target']['met']}; peak {sampler.peak - idle:+.0f} MB above idle "
            f"(gateway alone {sampler.first_peak - idle_gateway:+.0f} MB)"
        )
        with PeakSampler(pids) as sampler:
            start = time.perf_counter()
            decoded = client.get(report["urls"]["decompress"])
            decompress_seconds = time.perf_counter() - start
        assert decoded.status_code == 200
        print(
            f"decompress: {decompress_seconds:.1f} s; peak {sampler.peak - idle:+.0f} MB above idle "
            f"(gateway alone {sampler.first_peak - idle_gateway:+.0f} MB)"
        )

        answers: list[httpx.Response] = []

        def send() -> None:
            with httpx.Client(base_url=url, timeout=1800) as own:
                answers.append(own.post("/compress", files={"image": ("big.jpg", photo)}, data=form))

        with PeakSampler(pids) as sampler:
            threads = [threading.Thread(target=send) for _ in range(args.concurrent)]
            start = time.perf_counter()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            burst_seconds = time.perf_counter() - start
        statuses = sorted(a.status_code for a in answers)
        retry = [a.headers.get("Retry-After") for a in answers if a.status_code == 503]
        decodes = [
            client.get(a.json()["urls"]["decompress"]).status_code == 200
            for a in answers
            if a.status_code == 200
        ]
        alive = backends == _children(gateway)
        print(
            f"{args.concurrent} at once: statuses {statuses} in {burst_seconds:.1f} s, Retry-After {retry}, "
            f"every 200 decodes: {all(decodes)} ({len(decodes)}), backend not restarted: {alive}; "
            f"peak {sampler.peak - idle:+.0f} MB above idle"
        )
        time.sleep(5)
        after = rss_megabytes(gateway)
        print(
            f"gateway after the burst: {after:.0f} MB against {idle_gateway:.0f} MB before "
            f"({100 * (after / idle_gateway - 1):+.1f} %)"
        )


if __name__ == "__main__":
    main()
