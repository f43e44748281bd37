"""Do patch or tile borders show? Mean absolute step across borders against the same inside them.

    python -m benchmarks.seams [--images 24]

For each Kodak image compressed at MS-SSIM 0.95: the mean |difference| between horizontally and
vertically adjacent pixels that straddle a patch (or tile) border, divided by the same statistic for
adjacent pixels inside patches, each relative to the original image's own statistic at those places
(so natural edges do not count). 1.0 means borders are invisible to this measure; blocking pushes it up.
"""

from __future__ import annotations

import argparse

import numpy as np
from PIL import Image
from tqdm import tqdm

from benchmarks.rd_kodak import KODAK
from benchmarks.service_process import embedded_codec
from service.codec.rate_control import Target
from service.settings import Settings
from service.wiring import image_codec


def border_ratio(original: np.ndarray, decoded: np.ndarray, period: int) -> float:
    """(step at borders / step inside) of ``decoded`` over the same ratio for ``original``."""

    def steps(image: np.ndarray) -> tuple[float, float]:
        x = image.astype(np.float64)
        dx = np.abs(np.diff(x, axis=1)).mean(axis=(0, 2))  # between column j and j+1
        dy = np.abs(np.diff(x, axis=0)).mean(axis=(1, 2))
        border_x = (np.arange(dx.size) % period) == period - 1
        border_y = (np.arange(dy.size) % period) == period - 1
        at = np.concatenate([dx[border_x], dy[border_y]]).mean()
        inside = np.concatenate([dx[~border_x], dy[~border_y]]).mean()
        return at, inside

    at_d, in_d = steps(decoded)
    at_o, in_o = steps(original)
    return (at_d / in_d) / (at_o / in_o)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=24)
    parser.add_argument("--msssim", type=float, default=0.95)
    args = parser.parse_args(argv)
    settings = Settings()
    with embedded_codec(settings) as (shipped, client):
        small_tiles = image_codec(settings.model_copy(update={"tile_size": 128}), client)
        patch_row = f"patch borders ({settings.patch_size} px), shipped settings"
        rows: dict[str, list[float]] = {
            patch_row: [],
            "cell borders (16 px), shipped settings": [],
            "tile borders (128 px), tiles coded separately": [],
        }
        for path in tqdm(sorted(KODAK.glob("*.png"))[: args.images], desc="seams", unit="image"):
            rgb = np.asarray(Image.open(path).convert("RGB"))
            target = Target("msssim", args.msssim)
            decoded = shipped.compress(rgb, target).reconstruction
            rows[patch_row].append(border_ratio(rgb, decoded, settings.patch_size))
            rows["cell borders (16 px), shipped settings"].append(border_ratio(rgb, decoded, 16))
            rows["tile borders (128 px), tiles coded separately"].append(
                border_ratio(rgb, small_tiles.compress(rgb, target).reconstruction, 128)
            )
    print(f"Kodak, {args.images} images at MS-SSIM {args.msssim}: border / inside step vs the original")
    print("| borders | mean | max |\n| --- | --- | --- |")
    for name, values in rows.items():
        print(f"| {name} | {np.mean(values):.3f} | {np.max(values):.3f} |")


if __name__ == "__main__":
    main()
