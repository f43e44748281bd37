"""Train the receiver's restoration filter (``model_export/restoration.py``) on CPU, and measure what it buys.

    python -m model_export.train_restoration --run-dir runs/restoration --minutes 30
    python -m model_export.train_restoration --run-dir runs/restoration --evaluate --targets 30 70
    python -m model_export.train_restoration --run-dir runs/restoration --export models/restoration/1

Training pairs are training photos and the refinement layer's decoded image of them (over mid-grey, its
SSIMULACRA 2 layout, as ``POST /compress?ssimulacra2=`` codes them) at steps drawn log-uniformly from 2 to
120; crops start on the 8×8 block grid, so the filter's grid phase is the image's. The loss is the batch
mean of log(100 − SSIMULACRA 2) of the restored crops. Checkpoints every few minutes in ``<run-dir>``,
resumed from there. ``--export`` writes the latest checkpoint as a servable. ``--evaluate`` codes
validation photos with the layer alone at each target twice, its step searched on the decoded image and
on the restored one, and prints the bytes of each.
"""

from __future__ import annotations

import argparse
import functools
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import tensorflow as tf
from tqdm import tqdm

from model_export import ssimulacra2
from model_export.data import load_training_images
from model_export.restoration import RestorationFilter, export, load_exported
from model_export.train import Adam
from service.codec import refinement
from service.codec.encoding import grey_image
from service.codec.layer_coder import LayerCoder
from service.codec.quality import ssimulacra2 as measure
from service.codec.restoration import RestoredTransform

__all__ = ["decoded_pairs", "restore"]

_KIND = "ssimulacra2"
TRAIN = Path(__file__).resolve().parents[2] / "shared" / "data" / "train"
_STEPS = (2.0, 120.0)


def decoded_pairs(
    images: list[np.ndarray], per_image: int, rng: np.random.Generator
) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """(original, the layer's decoded image, its step) for ``per_image`` random steps of each image."""
    pairs = []
    for rgb in tqdm(images, desc="coding training photos", unit="photo"):
        transform = refinement.ResidualTransform.of(rgb, grey_image(*rgb.shape[:2]), _KIND, False)
        for _ in range(per_image):
            trial = transform.trial(float(np.exp(rng.uniform(*np.log(_STEPS)))))
            pairs.append((rgb, trial.image, trial.step))
    return pairs


def _batch(
    pairs: list[tuple[np.ndarray, np.ndarray, float]], crop: int, batch: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    originals, decoded, steps = [], [], []
    for index in rng.integers(len(pairs), size=batch):
        rgb, image, step = pairs[index]
        top = 8 * rng.integers((rgb.shape[0] - crop) // 8 + 1)
        left = 8 * rng.integers((rgb.shape[1] - crop) // 8 + 1)
        originals.append(rgb[top : top + crop, left : left + crop])
        decoded.append(image[top : top + crop, left : left + crop])
        steps.append(step)
    return (
        np.stack(originals).astype(np.float32),
        np.stack(decoded).astype(np.float32),
        np.array(steps, np.float32),
    )


def restore(model: RestorationFilter, image: np.ndarray, step: float) -> np.ndarray:
    """The filter on one uint8 image [H,W,3] (odd sides padded by their edge): uint8."""
    height, width = image.shape[:2]
    padded = np.pad(image, ((0, height % 2), (0, width % 2), (0, 0)), mode="edge")
    out = model(tf.constant(padded[None], tf.float32), tf.constant([step], tf.float32))
    return np.round(out.numpy()[0, :height, :width]).astype(np.uint8)


def train(args: argparse.Namespace) -> None:
    run_dir = Path(args.run_dir)
    model = RestorationFilter()
    optimizer = Adam(list(model.trainable_variables))
    step = tf.Variable(0, dtype=tf.int64, trainable=False)
    checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, step=step)
    manager = tf.train.CheckpointManager(checkpoint, run_dir / "checkpoints", max_to_keep=2)
    if manager.latest_checkpoint:
        checkpoint.restore(manager.latest_checkpoint)
        print(f"resumed from {manager.latest_checkpoint} at step {int(step)}")
    elif args.init_from:
        trained = load_exported(model, args.init_from)
        step.assign(trained)
        print(f"initialised from {args.init_from} (trained {trained} steps; fresh optimizer moments)")
    rng = np.random.default_rng(args.seed + int(step))
    images = load_training_images(Path(args.data), min_side=args.crop)[:: args.every]
    pairs = decoded_pairs(images, args.per_image, rng)
    variables = list(model.trainable_variables)

    @tf.function(
        input_signature=[
            tf.TensorSpec([args.batch, args.crop, args.crop, 3], tf.float32),
            tf.TensorSpec([args.batch, args.crop, args.crop, 3], tf.float32),
            tf.TensorSpec([args.batch], tf.float32),
            tf.TensorSpec([], tf.float32),
        ]
    )
    def train_step(original, decoded, steps, learning_rate):
        with tf.GradientTape() as tape:
            restored = model(decoded, steps)
            scores = tf.cast(ssimulacra2.scores(original, restored), tf.float32)
            loss = tf.reduce_mean(tf.math.log(tf.maximum(100.0 - scores, 0.0) + 1.0))
        grads = tape.gradient(loss, variables)
        grads, _ = tf.clip_by_global_norm(grads, 1.0)
        optimizer.apply(grads, variables, learning_rate)
        return loss, tf.reduce_mean(scores)

    deadline = time.monotonic() + 60.0 * args.minutes
    last_save = time.monotonic()
    ema = None
    with tqdm(desc="training the restoration filter", unit="step", initial=int(step)) as bar:
        while time.monotonic() < deadline:
            original, decoded, steps = _batch(pairs, args.crop, args.batch, rng)
            loss, score = train_step(original, decoded, steps, tf.constant(args.lr, tf.float32))
            step.assign_add(1)
            ema = float(score) if ema is None else 0.98 * ema + 0.02 * float(score)
            bar.update(1)
            bar.set_postfix(loss=f"{float(loss):.4f}", score=f"{ema:.2f}")
            if time.monotonic() - last_save > 60.0 * args.checkpoint_minutes:
                manager.save(checkpoint_number=int(step))
                last_save = time.monotonic()
    manager.save(checkpoint_number=int(step))


def _trained_steps(run_dir: Path) -> int:
    step = tf.Variable(0, dtype=tf.int64)
    tf.train.Checkpoint(step=step).restore(
        tf.train.latest_checkpoint(run_dir / "checkpoints")
    ).expect_partial()
    return int(step)


def _latest(run_dir: Path) -> RestorationFilter:
    model = RestorationFilter()
    latest = tf.train.latest_checkpoint(run_dir / "checkpoints")
    if latest is None:
        raise SystemExit(f"no checkpoint in {run_dir}")
    tf.train.Checkpoint(model=model).restore(latest).expect_partial()
    print(f"restoration filter from {latest}")
    return model


def evaluate(args: argparse.Namespace) -> None:
    model = _latest(Path(args.run_dir))
    images = load_training_images(Path(args.data), min_side=64, split="validation")[: args.images]
    for target in args.targets:
        plain = restored = 0
        for rgb in tqdm(images, desc=f"score {target:g}", unit="photo"):
            coder = LayerCoder(_KIND, target, measure)
            run = SimpleNamespace(rgb=rgb)
            transform = refinement.ResidualTransform.of(rgb, grey_image(*rgb.shape[:2]), _KIND, False)
            plain += len(refinement.encode(coder.search(run, transform)[0]))
            restored_transform = RestoredTransform(transform, functools.partial(restore, model), 1)
            restored += len(refinement.encode(coder.search(run, restored_transform)[0]))
        print(
            f"score {target:g}: {len(images)} validation photos, layer alone {plain:,} B, with the filter "
            f"{restored:,} B ({100 * (restored / plain - 1):+.1f} %)"
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--run-dir", default="runs/restoration")
    parser.add_argument("--data", default=str(TRAIN))
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--every", type=int, default=1, help="every N-th training photo")
    parser.add_argument("--per-image", type=int, default=3, help="decoded images (steps) per photo")
    parser.add_argument("--checkpoint-minutes", type=float, default=5.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--evaluate", action="store_true")
    parser.add_argument("--export", type=Path, help="write the latest checkpoint as a SavedModel here")
    parser.add_argument("--init-from", type=Path, help="an exported filter to start from (a new run)")
    parser.add_argument("--targets", type=float, nargs="+", default=[30.0, 70.0])
    parser.add_argument("--images", type=int, default=16, help="validation photos --evaluate codes")
    args = parser.parse_args(argv)
    if args.export:
        run_dir = Path(args.run_dir)
        export(_latest(run_dir), args.export, _trained_steps(run_dir))
    else:
        (evaluate if args.evaluate else train)(args)


if __name__ == "__main__":
    main()
