"""Which coder makes what: the service's bytes at MS-SSIM targets, per coder, against WebP at the same bytes.

    python -m benchmarks.coders                       # Kodak and the validation split, 0.90 and 0.95
    python -m benchmarks.coders --set kodak --targets 0.95 --images 8

For every image and target, ``ImageCodec.compress`` as ``POST /compress`` runs it (both coders compete,
the smaller bitstream meeting the target wins): its bytes, which coder made it ("network", "layer"), the
size of each coder's best bitstream where both were coded, and what a viewer sees against JPEG 4:2:0
and WebP at no more bytes (visible jumps, mean CIEDE2000 over the image and 16 px inside its border,
blocking on the 8-px grid, edges), averaged over the images on which both can go as small as ours.
Prints one table per set and writes the per-image rows to ``var/coders-<set>.json``.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass

import numpy as np
from tqdm import tqdm

from benchmarks.colour import BORDER
from benchmarks.rd_kodak import evaluation_sets
from benchmarks.service_process import embedded_codec
from benchmarks.viewer import VIEWER_CODECS, compared_rows, same_bytes_row
from service.codec.rate_control import Target
from service.settings import PROJECT_ROOT, Settings

__all__ = ["CoderRow", "summary"]


@dataclass
class CoderRow:
    image: str
    target: float
    bytes: int
    coder: str
    network_bytes: int  # the bitstream's bytes that are the network's (all but the layer's)
    coder_bytes: dict[str, int]
    met: bool
    seconds: float
    viewer: dict[str, dict | None]  # ours and each classic codec at no more bytes


def _measure(codec, name: str, rgb: np.ndarray, target: float) -> CoderRow:
    result = codec.compress(rgb, Target("msssim", target))
    size = len(result.bitstream)
    network = size - result.refinement_bytes if result.iterations else 0
    viewer = {
        k: (asdict(v) if v else None) for k, v in same_bytes_row(rgb, result.reconstruction, size).items()
    }
    return CoderRow(
        name,
        target,
        size,
        result.coder,
        network,
        result.coder_bytes,
        result.target_met,
        result.timings["total_seconds"],
        viewer,
    )


def summary(rows: list[CoderRow], title: str) -> str:
    """A Markdown table: per target, bytes, who made them, and ours against the classic codecs."""
    lines = [
        f"{title}: `POST /compress` at MS-SSIM targets, both coders competing"
        " (`python -m benchmarks.coders`)",
        "",
        "| target | images | bytes | network's bytes (share) | images with network iterations "
        "| layer alone | "
        "network alone smaller / layer smaller (both coded) | met | images compared with "
        + " and ".join(VIEWER_CODECS)
        + " | blocking: ours / "
        + " / ".join(VIEWER_CODECS)
        + " | CIEDE2000: ours / "
        + " / ".join(VIEWER_CODECS)
        + f" | CIEDE2000 {BORDER} px inside the border: ours / "
        + " / ".join(VIEWER_CODECS)
        + " | smooth-patch jumps: ours / "
        + " / ".join(VIEWER_CODECS)
        + " | edge turn °: ours / "
        + " / ".join(VIEWER_CODECS)
        + " | edge error: ours / "
        + " / ".join(VIEWER_CODECS)
        + " |",
        "| --- " * 15 + "|",
    ]
    for target in sorted({r.target for r in rows}):
        chosen = [r for r in rows if r.target == target]
        total = sum(r.bytes for r in chosen)
        network = sum(r.network_bytes for r in chosen)
        both = [r for r in chosen if {"network", "layer"} <= set(r.coder_bytes)]
        network_wins = sum(r.coder_bytes["network"] < r.coder_bytes["layer"] for r in both)

        compared = compared_rows([r.viewer for r in chosen])

        def mean(key: str, codec: str, compared: list[dict] = compared) -> str:
            values = [viewer[codec][key] for viewer in compared]
            return f"{np.mean(values):+.2f}" if key == "blocking" else f"{np.mean(values):.2f}"

        def jumps(codec: str, compared: list[dict] = compared) -> str:
            return str(sum(viewer[codec]["jumps"] for viewer in compared))

        lines.append(
            f"| {target} | {len(chosen)} | {total:,} | {network:,} ({network / total:.1%}) | "
            f"{sum(r.network_bytes > 0 for r in chosen)} | {sum(r.coder == 'layer' for r in chosen)} | "
            f"{network_wins} / {len(both) - network_wins} | {sum(r.met for r in chosen)} | "
            f"{len(compared)} | "
            + " / ".join(mean("blocking", c) for c in ("ours", *VIEWER_CODECS))
            + " | "
            + " / ".join(mean("ciede2000", c) for c in ("ours", *VIEWER_CODECS))
            + " | "
            + " / ".join(mean("ciede2000_inside", c) for c in ("ours", *VIEWER_CODECS))
            + " | "
            + " / ".join(jumps(c) for c in ("ours", *VIEWER_CODECS))
            + " | "
            + " / ".join(mean("edge_direction", c) for c in ("ours", *VIEWER_CODECS))
            + " | "
            + " / ".join(mean("edge_error", c) for c in ("ours", *VIEWER_CODECS))
            + " |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--set", choices=("kodak", "validation", "both"), default="both")
    parser.add_argument("--targets", type=float, nargs="+", default=[0.90, 0.95])
    parser.add_argument("--images", type=int, default=0, help="the first N images of each set")
    args = parser.parse_args(argv)
    loaders = evaluation_sets(args.set)
    settings = Settings()
    with embedded_codec(settings) as (codec, _):
        print(f"model {settings.model_name}/{codec.current_version()}")
        for key in loaders:
            images = loaders[key]()[: args.images or None]
            rows = [
                _measure(codec, name, rgb, target)
                for name, rgb in tqdm(images, desc=key, unit="image")
                for target in args.targets
            ]
            out = PROJECT_ROOT / "var" / f"coders-{key}.json"
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps([asdict(r) for r in rows], indent=1))
            print(summary(rows, "Kodak" if key == "kodak" else "The validation split"))
            print()


if __name__ == "__main__":
    main()
