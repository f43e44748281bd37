"""Big photos: a 12 MP mosaic of 30 Kodak images against the same 30 images compressed one by one.

    python -m benchmarks.big_images [--msssim 0.95]

The mosaic (3840×3072: 5 × 6 Kodak images, portrait ones turned, the 24 then the first 6 again) goes
through the same codec in this process (embedded backend over loopback gRPC) as the 30 images do one
at a time; the ratio of the two times says whether a big image costs more than its parts (it should
not: each backend call stops where its tiles meet the target). Prints bytes, quality, time and the
process's peak resident memory.
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np
from PIL import Image
from tqdm import tqdm

from benchmarks.rd_kodak import KODAK
from benchmarks.service_process import embedded_codec
from service.codec.rate_control import Target
from service.settings import Settings

__all__ = ["kodak_mosaic"]

COLUMNS, ROWS = 5, 6


def kodak_mosaic() -> tuple[np.ndarray, list[np.ndarray]]:
    """The 3840×3072 mosaic and its 30 landscape 768×512 parts, row by row."""
    images = []
    for path in sorted(KODAK.glob("*.png")):
        rgb = np.asarray(Image.open(path).convert("RGB"))
        images.append(rgb if rgb.shape[1] > rgb.shape[0] else np.ascontiguousarray(np.rot90(rgb)))
    parts = (images * 2)[: COLUMNS * ROWS]
    rows = [np.concatenate(parts[r * COLUMNS : (r + 1) * COLUMNS], axis=1) for r in range(ROWS)]
    return np.concatenate(rows, axis=0), parts


def _peak_megabytes() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--msssim", type=float, default=0.95)
    args = parser.parse_args(argv)
    mosaic, parts = kodak_mosaic()
    target = Target("msssim", args.msssim)
    with embedded_codec(Settings()) as (codec, _):
        codec.compress(parts[0], target)  # warm-up: traces and the context model
        start = time.perf_counter()
        singles = [codec.compress(part, target) for part in tqdm(parts, desc="one by one", unit="image")]
        one_by_one = time.perf_counter() - start
        before = _peak_megabytes()
        start = time.perf_counter()
        big = codec.compress(mosaic, target)
        whole = time.perf_counter() - start
    print(
        f"30 Kodak images one by one at MS-SSIM {args.msssim}: {one_by_one:.1f} s, "
        f"{sum(len(s.bitstream) for s in singles)} bytes, all met: {all(s.target_met for s in singles)}"
    )
    print(
        f"the 12 MP mosaic ({mosaic.shape[1]}x{mosaic.shape[0]}): {whole:.1f} s, {len(big.bitstream)} bytes, "
        f"MS-SSIM {big.msssim:.4f}, met: {big.target_met}, iterations {big.iterations}"
    )
    print(f"mosaic / one by one: {whole / one_by_one:.2f}x time")
    summed: dict[str, float] = {}
    for single in singles:
        for key, seconds in single.timings.items():
            summed[key] = summed.get(key, 0.0) + seconds
    print("where the time goes (s): step | 30 one by one | mosaic")
    for key in sorted(set(summed) | set(big.timings), key=lambda k: -summed.get(k, 0.0)):
        step = key.removesuffix("_seconds")
        print(f"  {step} | {summed.get(key, 0.0):.1f} | {big.timings.get(key, 0.0):.1f}")
    print(
        f"iterations coded, summed over the 32-px patches: one by one "
        f"{sum(int(s.patch_iterations.sum()) for s in singles)}, mosaic {int(big.patch_iterations.sum())}"
    )
    print(
        f"peak RSS of this process (gateway and backend together): {before:.0f} MB before the mosaic, "
        f"{_peak_megabytes():.0f} MB after"
    )


if __name__ == "__main__":
    main()
