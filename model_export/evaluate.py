"""Uniform-iteration quality curves of a codec on a folder of images, straight from the model.

    python -m model_export.evaluate --run-dir runs/residual_gru --images ../shared/data/kodak
    python -m model_export.evaluate --version-dir models/residual_gru/4 --split validation

For each image and each iteration count 1..N (every cell the same count, no rate control, raw bits
before entropy coding): MS-SSIM and PSNR of the decoded image against the original. Prints the mean
curve and the ceiling (how many images reach MS-SSIM 0.98 / 0.99 and PSNR 35 / 38 dB). Used to judge a
checkpoint during training; the service's own numbers come from ``make bench``.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np
import tensorflow as tf
from PIL import Image
from tqdm import tqdm

from model_export.data import IMAGE_SUFFIXES, image_paths
from model_export.model import CELL_SIZE, CodecConfig, RecurrentCodec
from model_export.shipped import restore_codec_weights
from model_export.snapshot import restore_snapshot, snapshot_config
from service.codec.colour import BORDER, ciede2000, mean_inside, srgb_to_lab
from service.codec.quality import msssim_batch, psnr_batch

__all__ = ["Curves", "evaluate_images", "load_folder", "load_run_codec", "load_validation_images"]

#: The ceilings the closing notes report: MS-SSIM and PSNR (dB) thresholds.
MSSSIM_LEVELS = (0.95, 0.98, 0.99)
PSNR_LEVELS = (30.0, 35.0, 38.0)
#: Targets at which the summary gives the network's raw bytes (docs/model.md's learning curve).
LEARNING_CURVE_TARGETS = (0.90, 0.95)


@dataclasses.dataclass
class Curves:
    """Per image and iteration count: raw bits per pixel, MS-SSIM, PSNR and mean CIEDE2000 (colour
    error; every model with the same bits per cell spends the same raw bits on a count, so the column
    compares models at the same bytes), over the whole image and ``BORDER`` px inside its border (where a
    network's zero padding and a loss's window ring show, docs/decisions.md 37), and how the original's
    strongest edges come through (``benchmarks.colour.edge_fidelity``: turn in degrees, luma error near
    them); arrays [images, N]."""

    names: list[str]
    pixels: np.ndarray  # per image
    bpp: np.ndarray
    msssim: np.ndarray
    psnr: np.ndarray
    ciede2000: np.ndarray
    ciede2000_inside: np.ndarray
    edge_turn: np.ndarray
    edge_error: np.ndarray

    def bytes_at(self, target: float) -> tuple[float, int]:
        """Raw bytes (before entropy coding) the uniform curve needs to reach MS-SSIM ``target``, summed
        over the images that reach it (interpolated between iteration counts on log(1 − MS-SSIM)), and
        how many reach it: the learning curve's measure of the network's own size at a target."""
        total, reached = 0.0, 0
        distance = np.log(np.maximum(1.0 - self.msssim, 1e-9))
        wanted = np.log(1.0 - target)
        for image, count in enumerate(self.pixels):
            above = np.flatnonzero(self.msssim[image] >= target)
            if not above.size:
                continue
            t = int(above[0])
            bpp = self.bpp[image, t]
            if t:  # between t-1 and t iterations
                low, high = distance[image, t - 1], distance[image, t]
                share = (low - wanted) / (low - high) if low > high else 1.0
                bpp = self.bpp[image, t - 1] + share * (self.bpp[image, t] - self.bpp[image, t - 1])
            total += bpp * count / 8.0
            reached += 1
        return total, reached

    def summary(self) -> str:
        """The mean curve and the ceiling counts as text."""
        lines = [f"iters  bpp(raw)  MS-SSIM   PSNR  CIEDE2000  {BORDER}px inside  edge turn  edge error"]
        for t in range(self.bpp.shape[1]):
            lines.append(
                f"{t + 1:5d}  {self.bpp[:, t].mean():8.3f}  {self.msssim[:, t].mean():.4f}"
                f"  {self.psnr[:, t].mean():6.2f}  {self.ciede2000[:, t].mean():9.3f}"
                f"  {self.ciede2000_inside[:, t].mean():11.3f}"
                f"  {self.edge_turn[:, t].mean():9.2f}  {self.edge_error[:, t].mean():10.2f}"
            )
        best_ssim, best_psnr = self.msssim.max(axis=1), self.psnr.max(axis=1)
        n = len(self.names)
        reach = [f"MS-SSIM {q}: {int((best_ssim >= q).sum())}/{n}" for q in MSSSIM_LEVELS]
        reach += [f"PSNR {q:g}: {int((best_psnr >= q).sum())}/{n}" for q in PSNR_LEVELS]
        lines.append("ceiling: " + ", ".join(reach))
        lines.append(f"best means: MS-SSIM {best_ssim.mean():.4f}, PSNR {best_psnr.mean():.2f} dB")
        for target in LEARNING_CURVE_TARGETS:
            total, reached = self.bytes_at(target)
            lines.append(f"raw bytes at MS-SSIM {target}: {total:,.0f} ({reached}/{n} images reach it)")
        return "\n".join(lines)


def evaluate_images(
    codec: RecurrentCodec, images: list[tuple[str, np.ndarray]], iterations: int, progress: bool = True
) -> Curves:
    """Encode and decode every image with 1..``iterations`` uniform iterations (one fused run each)."""
    from benchmarks.colour import edge_fidelity  # the benchmarks' measure (a checkout's, not installed)

    bpp, ssim, psnr, colour, colour_inside, edges = [], [], [], [], [], []
    for _, rgb in tqdm(images, desc="evaluating", unit="image", disable=not progress):
        height, width = rgb.shape[:2]
        pad_h, pad_w = -height % CELL_SIZE, -width % CELL_SIZE
        padded = np.pad(rgb, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")
        cells = ((height + pad_h) // CELL_SIZE, (width + pad_w) // CELL_SIZE)
        counts = tf.fill([1, *cells], iterations)
        out = codec.compress(tf.constant(padded[None]), counts)
        decoded = out["reconstructions"].numpy()[0, :, :height, :width]
        bits_per_iteration = cells[0] * cells[1] * codec.config.bits_per_cell
        bpp.append(bits_per_iteration * np.arange(1, iterations + 1) / (height * width))
        ssim.append(msssim_batch(rgb, decoded))
        psnr.append(psnr_batch(rgb, decoded))
        original = srgb_to_lab(rgb)
        errors = [ciede2000(original, srgb_to_lab(image)) for image in decoded]
        colour.append([error.mean() for error in errors])
        colour_inside.append([mean_inside(error, BORDER) for error in errors])
        edges.append([edge_fidelity(rgb, image) for image in decoded])
    pixels = np.array([rgb.shape[0] * rgb.shape[1] for _, rgb in images])
    edge_scores = np.array(edges)  # [images, N, (turn, error)]
    names = [name for name, _ in images]
    return Curves(
        names,
        pixels,
        np.array(bpp),
        np.array(ssim),
        np.array(psnr),
        np.array(colour),
        np.array(colour_inside),
        edge_scores[..., 0],
        edge_scores[..., 1],
    )


def load_run_codec(run_dir: Path) -> RecurrentCodec:
    """The codec of a training run's newest checkpoint."""
    codec = RecurrentCodec(CodecConfig.from_json((run_dir / "config.json").read_text()))
    latest = tf.train.latest_checkpoint(str(run_dir / "checkpoints"))
    if latest is None:
        raise SystemExit(f"no checkpoint under {run_dir / 'checkpoints'}")
    tf.train.Checkpoint(codec=codec).restore(latest).expect_partial()
    return codec


def load_folder(folder: Path, limit: int = 0) -> list[tuple[str, np.ndarray]]:
    """The images of ``folder`` sorted by name, as (file name, uint8 RGB); the first ``limit`` if given."""
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)[: limit or None]
    return [(p.name, np.asarray(Image.open(p).convert("RGB"))) for p in paths]


def load_validation_images(train_dir: Path, limit: int = 0) -> list[tuple[str, np.ndarray]]:
    """The held-out validation photographs at their stored size (no halving: they stand for photos
    users send, JPEG sources included)."""
    paths = image_paths(train_dir, "validation")[: limit or None]
    return [(f"{p.parent.name}/{p.name}", np.asarray(Image.open(p).convert("RGB"))) for p in paths]


def main(argv: list[str] | None = None) -> None:
    from model_export.train import DEFAULT_TRAIN_DIR

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--run-dir", type=Path, help="a training run (its newest checkpoint)")
    source.add_argument("--version-dir", type=Path, help="an exported SavedModel version")
    source.add_argument("--snapshot-dir", type=Path, help="the repository's training snapshot")
    parser.add_argument("--images", type=Path, help="a folder of images (default: the validation split)")
    parser.add_argument("--data", type=Path, default=DEFAULT_TRAIN_DIR.resolve())
    parser.add_argument("--limit", type=int, default=0, help="only the first N images")
    parser.add_argument("--iterations", type=int, default=0, help="default: the codec's maximum")
    args = parser.parse_args(argv)

    if args.run_dir:
        codec = load_run_codec(args.run_dir)
    elif args.snapshot_dir:
        codec = RecurrentCodec(snapshot_config(args.snapshot_dir))
        restore_snapshot(codec, args.snapshot_dir)
    else:
        from model_export.shipped import shipped_config

        codec = RecurrentCodec(shipped_config(args.version_dir))
        restore_codec_weights(codec, args.version_dir, warm_start=False)  # as it serves
    images = (
        load_folder(args.images, args.limit) if args.images else load_validation_images(args.data, args.limit)
    )
    curves = evaluate_images(codec, images, args.iterations or codec.config.max_iterations)
    print(curves.summary())


if __name__ == "__main__":
    main()
