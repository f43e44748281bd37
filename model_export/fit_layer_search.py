"""Fit where the refinement layer's step search starts for MS-SSIM aims (``service/codec/layer_coder.py``).

    python -m model_export.fit_layer_search

For ``--images`` photos of the training split (never the validation split, never Kodak; each at most
768×768), the layer alone at MS-SSIM aims from 0.88 to 0.985: a straight line through ln(step found)
against the aim in dB, and its residual. The search starts on that line (``_MSSSIM_FIRST_LOG_STEP``)
with 1/|slope| dB per e of step as its first slope guess (``_MSSSIM_DB_PER_E``; docs/decisions.md 56).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from model_export.data import image_paths
from service.codec.layer_coder import layer_alone
from service.codec.quality import msssim

AIMS = (0.88, 0.92, 0.95, 0.97, 0.985)
SIDE = 768


def fit_first_step(images: list[np.ndarray], aims: tuple[float, ...] = AIMS) -> tuple[float, float, float]:
    """(intercept, slope, residual): the line ln(step) = intercept + slope · dB(aim) through the steps the
    layer alone finds on uint8 ``images`` at MS-SSIM ``aims``, and the standard deviation about it."""
    decibels, log_steps = [], []
    for rgb in tqdm(images, desc="photos", unit="photo"):
        for aim in aims:
            trial, _ = layer_alone(rgb, "msssim", aim, msssim)
            decibels.append(-10 * np.log10(1 - aim))
            log_steps.append(np.log(trial.step))
    slope, intercept = np.polyfit(decibels, log_steps, 1)
    residual = np.std(np.array(log_steps) - (intercept + slope * np.array(decibels)))
    return float(intercept), float(slope), float(residual)


def main(argv: list[str] | None = None) -> None:
    from model_export.train import DEFAULT_TRAIN_DIR

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=DEFAULT_TRAIN_DIR.resolve())
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args(argv)
    paths = image_paths(args.data, "train")
    picks = np.random.default_rng(args.seed).choice(len(paths), args.images, replace=False)
    images = [
        np.ascontiguousarray(np.asarray(Image.open(paths[i]).convert("RGB"))[:SIDE, :SIDE]) for i in picks
    ]
    intercept, slope, residual = fit_first_step(images)
    print(f"ln(step) = {intercept:.2f} {slope:+.3f} * dB(aim); {-1 / slope:.2f} dB per e")
    print(f"residual {residual:.2f} in ln(step)")
    for aim in (0.90, 0.95, 0.98):
        print(f"  MS-SSIM {aim}: step {np.exp(intercept + slope * -10 * np.log10(1 - aim)):.1f}")


if __name__ == "__main__":
    main()
