"""The refinement layer on its own (over mid-grey, no network) on Kodak and the validation split: its bytes,
how its edges come through and how many measurements its step search took, per quality target. How
decisions 52-56 compared encoder choices.

    python -m benchmarks.layer_alone                          # MS-SSIM 0.95
    python -m benchmarks.layer_alone --targets 0.90 0.98 35   # a target above 1 is a PSNR in dB
"""

from __future__ import annotations

import argparse

import numpy as np
from tqdm import tqdm

from benchmarks.colour import edge_fidelity
from benchmarks.rd_kodak import KODAK, TRAIN
from service.codec import refinement
from service.codec.layer_coder import layer_alone
from service.codec.quality import msssim, psnr


def main(argv: list[str] | None = None) -> None:
    from model_export.evaluate import load_folder, load_validation_images

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--targets", type=float, nargs="+", default=[0.95])
    args = parser.parse_args(argv)
    images = load_folder(KODAK) + load_validation_images(TRAIN)
    print("| target | images | bytes | met | edge turn ° | edge error | measurements per image |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for target in args.targets:
        kind, measure = ("psnr", psnr) if target > 1 else ("msssim", msssim)
        sizes, met, edges, measured = [], 0, [], []

        def counted(reference: np.ndarray, image: np.ndarray, measure=measure, measured=measured) -> float:
            measured.append(1)
            return measure(reference, image)

        for _, rgb in tqdm(images, desc=f"{kind} {target:g}", unit="image"):
            trial, value = layer_alone(rgb, kind, target, counted)
            sizes.append(len(refinement.encode(trial)))
            met += value >= target
            edges.append(edge_fidelity(rgb, trial.image))
        turn, error = np.mean(edges, axis=0)
        print(
            f"| {kind} {target:g} | {len(images)} | {sum(sizes):,} | {met} | {turn:.2f} | {error:.2f} "
            f"| {len(measured) / len(images):.1f} |"
        )


if __name__ == "__main__":
    main()
