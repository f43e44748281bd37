"""The ladder against a fresh compress: what a stored master's prefix costs at a lower quality.

    python -m benchmarks.ladder [--set kodak|validation] [--images 8]

For each image, a master is compressed at MS-SSIM 0.95 and at 0.98 (as ``POST /compress`` does, its
ladder measured as compress records it, with the per-patch rungs at ``RGIC_LADDER_MSSSIMS``); for each
lower target (0.90, 0.93) the ladder's answer (``GET /bitstreams/{id}?msssim=x``: the smallest rung
meeting x: a prefix, a per-patch cut, or below a master the layer made an alternate) is set against a
fresh compress at x. Prints the total bytes of each, the ratio, how many answers were per-patch cuts and
alternates, how many answers, decoded here, met their target (they all must: the ladder holds
measured qualities), and how many masters and fresh compresses the layer made (a network master's rungs
are network bitstreams, where a fresh compress may choose the layer).
"""

from __future__ import annotations

import argparse

from tqdm import tqdm

from benchmarks.rd_kodak import KODAK, TRAIN
from benchmarks.service_process import embedded_codec
from service.codec.ladder import choose_rung, measure_ladder, rung_bitstream
from service.codec.quality import msssim
from service.codec.rate_control import Target
from service.errors import NotInLadder
from service.settings import Settings

MASTERS = (0.95, 0.98)
LOWER = (0.90, 0.93)


def main(argv: list[str] | None = None) -> None:
    from model_export.evaluate import load_folder, load_validation_images

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--set", choices=("kodak", "validation"), default="kodak")
    parser.add_argument("--images", type=int, default=8, help="the first N images (0: all)")
    args = parser.parse_args(argv)
    loader = load_folder if args.set == "kodak" else load_validation_images
    images = loader(KODAK if args.set == "kodak" else TRAIN)[: args.images or None]
    settings = Settings()
    ladder_bytes = {(m, x): 0 for m in MASTERS for x in LOWER}
    met = {(m, x): 0 for m in MASTERS for x in LOWER}
    cuts = {(m, x): {"per-patch": 0, "alternate": 0} for m in MASTERS for x in LOWER}
    fresh = dict.fromkeys(LOWER, 0)
    layer_made = dict.fromkeys((*LOWER, *MASTERS), 0)
    with embedded_codec(settings) as (codec, _):
        version = codec.current_version()
        for _, rgb in tqdm(images, desc=args.set, unit="image"):
            for target in LOWER:
                result = codec.compress(rgb, Target("msssim", target))
                fresh[target] += len(result.bitstream)
                layer_made[target] += result.coder == "layer"
            for master in MASTERS:
                compressed = codec.compress(rgb, Target("msssim", master), keep_frames=True)
                layer_made[master] += compressed.coder == "layer"
                ladder = measure_ladder(codec, compressed.bitstream, rgb, compressed)
                for target in LOWER:
                    try:
                        rung = choose_rung(ladder, msssim=target)
                    except NotInLadder:
                        rung = ladder[-1]
                    answer = rung_bitstream(codec, compressed.bitstream, rung)
                    ladder_bytes[master, target] += len(answer)
                    if rung.cut in cuts[master, target]:
                        cuts[master, target][rung.cut] += 1
                    met[master, target] += msssim(rgb, codec.decompress(answer).image) >= target
    print(f"{args.set}, {len(images)} images, model {settings.model_name}/{version}")
    print(
        "| master | target | ladder's answer bytes | fresh compress bytes | ladder / fresh "
        "| per-patch cuts | alternates | answers meeting it (decoded) | masters / fresh the layer made |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for (master, target), size in ladder_bytes.items():
        print(
            f"| {master} | {target} | {size:,} | {fresh[target]:,} | {size / fresh[target]:.3f} "
            f"| {cuts[master, target]['per-patch']} | {cuts[master, target]['alternate']} "
            f"| {met[master, target]} / {len(images)} | {layer_made[master]} / {layer_made[target]} |"
        )


if __name__ == "__main__":
    main()
