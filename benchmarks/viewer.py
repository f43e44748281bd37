"""What a viewer sees: ours against JPEG 4:2:0 and WebP at the same bytes, and a picture sheet.

    python -m benchmarks.viewer                       # the picture sheet: docs/viewer_sheet.png
    python -m benchmarks.viewer --crop kodim23.png:400,40,128 --crop ...

``make bench`` reports the jump counts and mean CIEDE2000 (``benchmarks/colour.py``) for every image at
MS-SSIM 0.90 and 0.95 through :func:`same_bytes_row`. The sheet shows, per crop, the original, ours at
MS-SSIM 0.95 (with the coder that made it) and JPEG and WebP at the largest quality whose file is not
larger than our bitstream, each at 2× zoom (nearest neighbour, so every pixel shows), labelled with the
crop's blocking on the 8-px grid (``benchmarks/colour.grid_blocking``) and how far its edges' direction
turned (``benchmarks/colour.edge_fidelity``: an 8×8 staircase turns a diagonal edge, a blur does not).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from benchmarks.colour import BORDER, ciede2000_error, edge_fidelity, grid_blocking, mean_inside, patch_jumps
from service.codec.rate_control import Target
from service.comparison.classic import largest_within

__all__ = ["VIEWER_CODECS", "ViewerScore", "compared_rows", "same_bytes_row"]

#: The classic codecs the viewer comparison puts beside ours.
VIEWER_CODECS = ("JPEG 4:2:0", "WebP")
ZOOM = 2
#: A smooth background, a smooth-to-textured transition, fine texture, and (from the validation split) an
#: edge between two smooth areas, where the layer's blocks still show (docs/decisions.md 48).
DEFAULT_CROPS = (
    "kodim23.png:560,20,128",
    "kodim07.png:300,0,128",
    "kodim13.png:300,200,128",
    "bsds500-val/3096.jpg:200,100,128",
)


@dataclass
class ViewerScore:
    bytes: int
    jumps: int
    largest_jump: float
    ciede2000: float
    #: luma steps across the 8-px grid against elsewhere, over the original's (``grid_blocking``)
    blocking: float = float("nan")
    #: mean CIEDE2000 of the pixels at least ``BORDER`` px inside the image
    ciede2000_inside: float = float("nan")
    #: at the original's strongest edges, how far their direction turned (degrees; staircases turn it)
    #: and the mean |luma error| near them (``edge_fidelity``)
    edge_direction: float = float("nan")
    edge_error: float = float("nan")


def _score(rgb: np.ndarray, decoded: np.ndarray, size: int) -> ViewerScore:
    jumps, largest = patch_jumps(rgb, decoded)
    error = ciede2000_error(rgb, decoded)
    return ViewerScore(
        size,
        jumps,
        largest,
        mean_inside(error),
        grid_blocking(rgb, decoded),
        mean_inside(error, inside=BORDER),
        *edge_fidelity(rgb, decoded),
    )


def same_bytes_row(rgb: np.ndarray, ours: np.ndarray, ours_bytes: int) -> dict[str, ViewerScore | None]:
    """Jumps and colour error of ours and of each classic codec at no more bytes than ours."""
    row: dict[str, ViewerScore | None] = {"ours": _score(rgb, ours, ours_bytes)}
    for name in VIEWER_CODECS:
        found = largest_within(name, rgb, ours_bytes)
        row[name] = None if found is None else _score(rgb, found.decoded, len(found.data))
    return row


def compared_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows (codec name -> score, as :func:`same_bytes_row` gives) in which every classic codec could
    go as small as ours: the images on which means of ours and theirs compare like with like. (Where
    one cannot, no file of theirs is as small; averaging ours over more images than theirs would weigh
    a different set of photos.)"""
    return [row for row in rows if all(row.get(name) is not None for name in VIEWER_CODECS)]


def _label(image: Image.Image, text: str) -> Image.Image:
    """``image`` under ``text`` (16 px a line)."""
    lines = text.count("\n") + 1
    canvas = Image.new("RGB", (image.width, image.height + 16 * lines), "white")
    canvas.paste(image, (0, 16 * lines))
    ImageDraw.Draw(canvas).multiline_text((2, 2), text, fill="black", spacing=4)
    return canvas


def picture_sheet(
    crops: list[tuple[Path, int, int, int]],
    target: Target,
    out: Path,
    codecs: tuple[str, ...] = VIEWER_CODECS,
    title: str = "",
) -> None:
    """One row per crop (path, x, y, side): original | ours at ``target`` | each of ``codecs`` at no more
    bytes, each labelled with the whole image's SSIMULACRA 2 and the crop's grid blocking and edge turn."""
    from benchmarks.service_process import embedded_codec
    from service.codec.quality import ssimulacra2
    from service.settings import Settings

    rows = [_label(Image.new("RGB", (8 * len(title) + 4, 1), "white"), title)] if title else []
    with embedded_codec(Settings()) as (codec, _):
        for path, x, y, side in crops:
            rgb = np.asarray(Image.open(path).convert("RGB"))
            result = codec.compress(rgb, target)
            size = len(result.bitstream)
            panels = [("original", rgb), (f"ours ({result.coder}) {size} B", result.reconstruction)]
            for name in codecs:
                found = largest_within(name, rgb, size)
                if found is not None:
                    panels.append((f"{name} q{found.quality} {len(found.data)} B", found.decoded))
            tiles = []
            for label, image in panels:
                window = np.s_[y : y + side, x : x + side]
                if image is not rgb:  # the crop's grid blocking and its edges' turn (benchmarks/colour.py)
                    blocking = grid_blocking(rgb[window], image[window])
                    direction, _ = edge_fidelity(rgb[window], image[window])
                    label += f", S2 {ssimulacra2(rgb, image):.1f}"
                    label += f"\ngrid {blocking:+.2f}, edges {direction:.1f}°"
                crop = Image.fromarray(image[window])
                crop = crop.resize((side * ZOOM, side * ZOOM), Image.Resampling.NEAREST)
                tiles.append(_label(crop, f"{path.stem}: {label}"))
            row = Image.new(
                "RGB", (sum(t.width for t in tiles) + 4 * (len(tiles) - 1), tiles[0].height), "white"
            )
            for i, tile in enumerate(tiles):
                row.paste(tile, (i * (tile.width + 4), 0))
            rows.append(row)
    sheet = Image.new("RGB", (max(r.width for r in rows), sum(r.height + 4 for r in rows)), "white")
    top = 0
    for row in rows:
        sheet.paste(row, (0, top))
        top += row.height + 4
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out, optimize=True)


def _crop_argument(text: str) -> tuple[Path, int, int, int]:
    name, box = text.split(":")
    x, y, side = (int(v) for v in box.split(","))
    path = Path(name)
    if not path.exists():
        from benchmarks.rd_kodak import KODAK, TRAIN

        path = KODAK / name if (KODAK / name).exists() else TRAIN / name
    return path, x, y, side


def main(argv: list[str] | None = None) -> None:
    from service.settings import PROJECT_ROOT

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--crop",
        action="append",
        type=_crop_argument,
        help="image:x,y,side (a Kodak name, a path, or one under the training folder); default: smooth "
        "and textured crops of Kodak and an edge on a validation photo",
    )
    parser.add_argument("--target", type=float, default=0.95, help="our MS-SSIM target")
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "docs" / "viewer_sheet.png")
    args = parser.parse_args(argv)
    crops = args.crop or [_crop_argument(c) for c in DEFAULT_CROPS]
    picture_sheet(crops, Target("msssim", args.target), args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
