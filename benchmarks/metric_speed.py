"""How long the gateway's quality measures take on a Kodak image (each image against its JPEG at quality 50).

    python -m benchmarks.metric_speed          # all 24 Kodak images, 3 runs each

SSIMULACRA 2's aim is at most 0.15 s a Kodak image on this project's 2 cores (rate control measures every
step it tries); pause training while it runs. Prints the median and the slowest per measure.
"""

from __future__ import annotations

import argparse
import io
import time

import numpy as np
from PIL import Image

from benchmarks.rd_kodak import KODAK
from service.codec.quality import msssim, ssimulacra2, warm_up

__all__ = ["timings"]


def timings(images: list[np.ndarray], runs: int) -> dict[str, list[float]]:
    """Seconds of each measure on each image (the best of ``runs``), after the traces are warm."""
    warm_up()
    found: dict[str, list[float]] = {"ssimulacra2": [], "msssim": []}
    for rgb in images:
        buffer = io.BytesIO()
        Image.fromarray(rgb).save(buffer, "JPEG", quality=50)
        distorted = np.asarray(Image.open(buffer).convert("RGB"))
        for name, measure in (("ssimulacra2", ssimulacra2), ("msssim", msssim)):
            measure(rgb, distorted)  # each orientation traces once
            best = np.inf
            for _ in range(runs):
                start = time.perf_counter()
                measure(rgb, distorted)
                best = min(best, time.perf_counter() - start)
            found[name].append(best)
    return found


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    images = [np.asarray(Image.open(p).convert("RGB")) for p in sorted(KODAK.glob("*.png"))]
    for name, seconds in timings(images, args.runs).items():
        print(
            f"{name}: median {np.median(seconds):.3f} s, slowest {max(seconds):.3f} s "
            f"over {len(seconds)} Kodak images"
        )


if __name__ == "__main__":
    main()
