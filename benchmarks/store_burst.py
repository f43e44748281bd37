"""A burst of compresses against a small blob-directory cap: the directory never holds more than the cap.

    python -m benchmarks.store_burst [--cap 30000] [--requests 48] [--clients 8]

Starts ``rgic serve`` as `make run` does with ``RGIC_BLOB_MAX_BYTES`` set to ``--cap`` and an empty blob
directory, then ``--clients`` threads send ``--requests`` compresses in all (distinct 128×128 Kodak
crops, each stored as a bitstream plus its ladder document). A sampler walks the directory every 5 ms and
records the largest total it saw. Prints: answers by status, bytes written, peak, final size, evictions
(from /metrics), and whether every bitstream still listed decodes.
"""

from __future__ import annotations

import argparse
import io
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

from benchmarks.rd_kodak import KODAK
from benchmarks.service_process import running_service


def _crops(count: int) -> list[bytes]:
    images = [np.asarray(Image.open(p).convert("RGB")) for p in sorted(KODAK.glob("*.png"))]
    crops = []
    for i in range(count):
        image = images[i % len(images)]
        y, x = (i * 37) % (image.shape[0] - 128), (i * 53) % (image.shape[1] - 128)
        out = io.BytesIO()
        Image.fromarray(image[y : y + 128, x : x + 128]).save(out, format="PNG")
        crops.append(out.getvalue())
    return crops


def _on_disk(root: Path) -> int:
    total = 0
    for path in root.rglob("*"):
        try:
            total += path.stat().st_size if path.is_file() else 0
        except FileNotFoundError:  # evicted while we walked
            pass
    return total


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cap", type=int, default=30_000)
    parser.add_argument("--requests", type=int, default=48)
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args(argv)
    crops = _crops(args.requests)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "blobs"
        env = {"RGIC_BLOB_DIR": str(root), "RGIC_BLOB_MAX_BYTES": str(args.cap)}
        with running_service(env) as (url, _):
            peak, stop = [0], threading.Event()

            def sample() -> None:
                while not stop.is_set():
                    peak[0] = max(peak[0], _on_disk(root))
                    time.sleep(0.005)

            sampler = threading.Thread(target=sample)
            sampler.start()

            def send(crop: bytes) -> tuple[int, int]:
                for _ in range(30):  # a client retries a 503 after its Retry-After
                    answer = httpx.post(
                        f"{url}/compress",
                        files={"image": ("c.png", crop)},
                        data={"msssim": "0.95"},
                        timeout=600,
                    )
                    if answer.status_code != 503:
                        return answer.status_code, answer.json().get("bytes", 0)
                    time.sleep(float(answer.headers.get("retry-after", 1)))
                return 503, 0

            start = time.monotonic()
            with ThreadPoolExecutor(args.clients) as pool:
                answers = list(pool.map(send, crops))
            stop.set()
            sampler.join()
            metrics = httpx.get(f"{url}/metrics").text
            evicted = sum(
                float(line.split()[1])
                for line in metrics.splitlines()
                if line.startswith("rgic_store_evictions_total")
            )
            left = [p for p in root.rglob("*") if p.is_file() and p.suffix != ".json"]
            decodes = sum(
                httpx.get(f"{url}/decompress/{p.name}", timeout=120).status_code == 200 for p in left
            )
        statuses = {s: sum(1 for a, _ in answers if a == s) for s in sorted({a for a, _ in answers})}
        print(
            f"{args.requests} compresses from {args.clients} clients in {time.monotonic() - start:.0f} s: "
            f"{statuses}"
        )
        print(
            f"bitstream bytes written {sum(b for _, b in answers):,} (plus ladders) "
            f"against a cap of {args.cap:,}"
        )
        print(
            f"largest directory total sampled {peak[0]:,} B; at the end {_on_disk(root):,} B; "
            f"{evicted:.0f} files evicted"
        )
        print(f"bitstreams left {len(left)}, of which decode: {decodes}")


if __name__ == "__main__":
    main()
