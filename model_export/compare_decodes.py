"""Decode the same bitstreams with two exports of a model version and report how far their images differ.

A re-export (``export --init-from``, docs/decisions.md 47) must decode the bitstreams the version made as
it did: this makes bitstreams with the ``reference`` export's own ``compress`` (random iteration counts
per cell, up to the version's maximum, on crops of Kodak and the validation split), decodes them with
both exports' ``decompress`` in sessions like the embedded backend's (float32 and, where the CPU has it,
bfloat16), and prints the largest difference in levels over every frame; 0 means bit for bit.

    python -m model_export.compare_decodes <old version dir> models/residual_gru/5
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import tensorflow as tf

from model_export.shipped import shipped_config
from service.backend.embedded import LoadedModel, cpu_has_bfloat16

__all__ = ["largest_difference"]

_CROP = (256, 384)


def _proto(array: np.ndarray) -> object:
    return tf.make_tensor_proto(array)


def largest_difference(
    reference: LoadedModel,
    candidate: LoadedModel,
    images: list[np.ndarray],
    max_iterations: int,
    seed: int = 0,
) -> tuple[int, int]:
    """(largest difference in levels, frames compared) between the two models' decodes of bitstreams
    ``reference`` makes of ``images``; the context model's arrays must be equal too."""
    if "context_model" in reference.signature_defs or "context_model" in candidate.signature_defs:
        batch = {"batch": _proto(np.zeros([1], np.int32))}
        ours, theirs = reference.run("context_model", batch)[0], candidate.run("context_model", batch)[0]
        if set(ours) != set(theirs) or not all(np.array_equal(ours[k], theirs[k]) for k in ours):
            raise AssertionError("the context models differ")
    rng = np.random.default_rng(seed)
    inputs = reference.signature_defs["compress"].inputs
    worst, frames = 0, 0
    for image in images:
        height, width = (min(side, limit) // 16 * 16 for side, limit in zip(image.shape, _CROP, strict=False))
        crop = image[None, :height, :width]
        cells = (crop.shape[1] // 16, crop.shape[2] // 16)
        counts = rng.integers(1, max_iterations + 1, size=(1, *cells)).astype(np.int32)
        counts[0, 0, 0] = max_iterations
        request = {
            "image": crop,
            "iterations": counts,
            "stop_msssim": np.zeros([1], np.float32),
            "stop_psnr": np.zeros([1], np.float32),
            "extra_iterations": np.zeros([1], np.int32),
        }
        bits = reference.run("compress", {k: _proto(v) for k, v in request.items() if k in inputs})[0]["bits"]
        ours = reference.run("decompress", {"bits": _proto(bits)})[0]["reconstructions"]
        theirs = candidate.run("decompress", {"bits": _proto(bits)})[0]["reconstructions"]
        worst = max(worst, int(np.abs(ours.astype(np.int16) - theirs.astype(np.int16)).max()))
        frames += ours.shape[1]
    return worst, frames


def main(argv: list[str] | None = None) -> None:
    from benchmarks.rd_kodak import KODAK, TRAIN
    from model_export.evaluate import load_folder, load_validation_images

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("reference", type=Path, help="the version as it was exported first")
    parser.add_argument("candidate", type=Path, help="its re-export")
    parser.add_argument("--images", type=int, default=8, help="crops of Kodak and of validation")
    args = parser.parse_args(argv)

    images = [rgb for _, rgb in load_folder(KODAK, args.images)]
    images += [rgb for _, rgb in load_validation_images(TRAIN, args.images)]
    max_iterations = shipped_config(args.reference).max_iterations
    for precision in ("", "bfloat16") if cpu_has_bfloat16() else ("",):
        reference = LoadedModel("reference", 1, args.reference, precision)
        candidate = LoadedModel("candidate", 2, args.candidate, precision)
        worst, frames = largest_difference(reference, candidate, images, max_iterations)
        name = precision or "float32"
        print(f"{name}: {len(images)} images, {frames} frames, largest difference {worst} levels")


if __name__ == "__main__":
    main()
