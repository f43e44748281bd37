"""Train the recurrent codec on CPU, with checkpoints and resume.

    python -m model_export.train --run-dir runs/residual_gru --hours 2

Resumes from ``<run-dir>/checkpoints`` when present, otherwise (``--init-from``) from the weights
of an exported SavedModel, so that training carries on across machines from the shipped model.
SIGTERM or Ctrl-C writes a last checkpoint before leaving.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import dataclasses
import math
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import tensorflow as tf
from tqdm import tqdm

from model_export.data import CropSampler, load_training_images
from model_export.model import CELL_SIZE, EARLY_ITERATIONS, CodecConfig, RecurrentCodec
from model_export.shipped import restore_codec_weights, shipped_config, shipped_metadata
from model_export.snapshot import has_snapshot, restore_snapshot, snapshot_config, write_snapshot
from service.backend.embedded import keep_quality_terms_float32, resolve_mixed_precision

__all__ = ["Adam", "learning_rate", "train", "unrolled_iterations"]

DEFAULT_TRAIN_DIR = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "train"


class Adam(tf.Module):
    """Adam with its moments as tracked variables, so a checkpoint resumes it exactly."""

    def __init__(self, variables: list[tf.Variable], beta1: float = 0.9, beta2: float = 0.999) -> None:
        super().__init__(name="adam")
        self.beta1, self.beta2, self.epsilon = beta1, beta2, 1e-8
        self.m = [tf.Variable(tf.zeros_like(v), trainable=False) for v in variables]
        self.v = [tf.Variable(tf.zeros_like(v), trainable=False) for v in variables]
        self.steps = tf.Variable(0, dtype=tf.int64, trainable=False)

    def apply(self, grads: list[tf.Tensor], variables: list[tf.Variable], learning_rate: tf.Tensor) -> None:
        self.steps.assign_add(1)
        t = tf.cast(self.steps, tf.float32)
        scale = learning_rate * tf.sqrt(1.0 - self.beta2**t) / (1.0 - self.beta1**t)
        for g, var, m, v in zip(grads, variables, self.m, self.v, strict=True):
            m.assign(self.beta1 * m + (1.0 - self.beta1) * g)
            v.assign(self.beta2 * v + (1.0 - self.beta2) * tf.square(g))
            var.assign_sub(scale * m / (tf.sqrt(v) + self.epsilon))


def _stop_masks(
    rng: np.random.Generator, batch: int, cells: int, iterations: int, fraction: float
) -> np.ndarray:
    """Per-cell iteration counts: most crops run all iterations, ``fraction`` stop cells at random."""
    stop = np.full((batch, cells, cells), iterations, dtype=np.int32)
    chosen = rng.random(batch) < fraction
    stop[chosen] = rng.integers(1, iterations + 1, size=(int(chosen.sum()), cells, cells))
    return stop


def learning_rate(step: int, base: float, half_life: float, decay_start: int = 0) -> float:
    """``base`` until ``decay_start``, then halved every ``half_life`` steps (never, if 0)."""
    if half_life <= 0:
        return base
    return base * 0.5 ** (max(0, step - decay_start) / half_life)


def _step_seed(seed: int, step: int) -> int:
    """The seed of a run resuming at ``step``: a resumed session draws new crops and noise instead of
    replaying the ones its first session started with, and is still reproducible from (seed, step)."""
    return int(np.random.SeedSequence([seed, step]).generate_state(1)[0])


@contextlib.contextmanager
def _stop_requests() -> Iterator[threading.Event]:
    """An event that SIGTERM or Ctrl-C sets while the block runs; the previous handlers return after it."""
    requested = threading.Event()
    signals = (signal.SIGTERM, signal.SIGINT)
    previous = {number: signal.signal(number, lambda *_: requested.set()) for number in signals}
    try:
        yield requested
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def unrolled_iterations(step: int, iterations: int, long_iterations: int, long_every: int) -> int:
    """How many iterations ``step`` unrolls: ``long_iterations`` on every ``long_every``-th step (if
    set), else ``iterations``."""
    if long_iterations and step % long_every == long_every - 1:
        return long_iterations
    return iterations


_BFLOAT16_REWRITE = "auto_mixed_precision_onednn_bfloat16"


@contextlib.contextmanager
def _mixed_precision(setting: str) -> Iterator[bool]:
    """Within the block, TF functions traced run their convolutions in bfloat16 (``--mixed-precision``):
    oneDNN's automatic mixed precision, with float32 weights, sums and quality terms. Yields whether it
    is on; the process's functions traced after the block are float32 again."""
    if resolve_mixed_precision(setting) != "bfloat16":
        yield False
        return
    keep_quality_terms_float32()
    before = tf.config.optimizer.get_experimental_options().get(_BFLOAT16_REWRITE, False)
    tf.config.optimizer.set_experimental_options({_BFLOAT16_REWRITE: True})
    try:
        yield True
    finally:
        tf.config.optimizer.set_experimental_options({_BFLOAT16_REWRITE: before})


def train(args: argparse.Namespace) -> None:
    """Run the training loop described by the command-line ``args``."""
    with _mixed_precision(args.mixed_precision) as bfloat16:
        if bfloat16:
            print("convolutions in bfloat16 (oneDNN's automatic mixed precision), weights in float32")
        _train(args)


def _train(args: argparse.Namespace) -> None:
    tf.random.set_seed(args.seed)  # the initial weights of a fresh run
    run_dir = Path(args.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    config_path = run_dir / "config.json"
    if config_path.exists():
        config = CodecConfig.from_json(config_path.read_text())
    elif args.snapshot_dir and has_snapshot(Path(args.snapshot_dir)):
        config = snapshot_config(Path(args.snapshot_dir))
    else:  # a fresh run: the shipped model's configuration, or the default, with what the flags change
        config = shipped_config(Path(args.init_from)) if args.init_from else CodecConfig()
        changes = {"adaptive_gain": args.adaptive_gain, "max_iterations": args.max_iterations}
        config = dataclasses.replace(config, **{k: v for k, v in changes.items() if v is not None})
        unrolled = max(args.iterations, args.long_iterations)
        if config.max_iterations < unrolled:
            config = dataclasses.replace(config, max_iterations=unrolled)
    if args.priming is not None:  # the same weights: a run or a snapshot can take up priming
        config = dataclasses.replace(config, priming=args.priming)
    config_path.write_text(config.to_json())

    snapshot = Path(args.snapshot_dir) if args.snapshot_dir else None
    codec = RecurrentCodec(config)
    variables = list(codec.trainable_variables)
    optimizer = Adam(variables)
    global_step = tf.Variable(0, dtype=tf.int64, trainable=False)
    checkpoint = tf.train.Checkpoint(codec=codec, optimizer=optimizer, step=global_step)
    manager = tf.train.CheckpointManager(checkpoint, run_dir / "checkpoints", max_to_keep=3)
    if manager.latest_checkpoint:
        checkpoint.restore(manager.latest_checkpoint)
        print(f"resumed from {manager.latest_checkpoint} at step {int(global_step)}")
    elif snapshot is not None and has_snapshot(snapshot):
        global_step.assign(restore_snapshot(codec, snapshot))
        print(f"resumed from the snapshot in {snapshot} at step {int(global_step)} (fresh optimizer moments)")
    elif args.init_from:
        restore_codec_weights(codec, Path(args.init_from))
        start = shipped_metadata(Path(args.init_from)).get("training_steps", 0)
        global_step.assign(start)
        print(f"initialised from {args.init_from} (trained {start} steps)")

    trained_iterations = max(args.iterations, args.long_iterations)

    def save() -> None:
        path = manager.save(checkpoint_number=int(global_step))
        if snapshot is not None:
            write_snapshot(codec, snapshot, int(global_step), trained_iterations)
        return path

    start_step = int(global_step)
    seed = _step_seed(args.seed, start_step)
    tf.random.set_seed(seed)
    rng = np.random.default_rng(seed)
    images = load_training_images(Path(args.data), min_side=max(64, args.crop))
    sampler = CropSampler(images, crop=args.crop, batch=args.batch, seed=seed + 1)
    cells = args.crop // CELL_SIZE

    def make_train_step(iterations: int) -> Callable[[tf.Tensor, tf.Tensor, tf.Tensor], tf.Tensor]:
        @tf.function(
            input_signature=[
                tf.TensorSpec([args.batch, args.crop, args.crop, 3], tf.float32),
                tf.TensorSpec([args.batch, cells, cells], tf.int32),
                tf.TensorSpec([], tf.float32),
            ]
        )
        def train_step(batch: tf.Tensor, stop_at: tf.Tensor, learning_rate: tf.Tensor) -> tf.Tensor:
            with tf.GradientTape() as tape:
                loss, _ = codec.forward(
                    batch,
                    iterations,
                    stop_at=stop_at,
                    training=True,
                    log_loss=args.log_loss,
                    early_weight=args.early_weight,
                    msssim_weight=args.msssim_weight,
                    colour_weight=args.colour_weight,
                    msssim_covers_border=args.msssim_covers_border,
                    edge_weight=args.edge_weight,
                    ssimulacra2_weight=args.ssimulacra2_weight,
                )
            grads = tape.gradient(loss, variables)
            grads, _ = tf.clip_by_global_norm([tf.convert_to_tensor(g) for g in grads], 1.0)
            optimizer.apply(grads, variables, learning_rate)
            global_step.assign_add(1)
            return loss

        return train_step

    train_steps = {n: make_train_step(n) for n in {args.iterations, args.long_iterations} if n}

    started = time.monotonic()
    deadline = started + args.hours * 3600.0
    last_save = started
    log_path = run_dir / "log.csv"
    new_log = not log_path.exists()
    with (
        _stop_requests() as stopping,
        log_path.open("a", newline="") as log_file,
        tqdm(total=args.steps, initial=min(start_step, args.steps), desc="training", unit="step") as bar,
    ):
        log = csv.writer(log_file)
        if new_log:
            log.writerow(["step", "loss", "learning_rate", "unix_time"])
        log.writerow(
            [
                f"# iterations={args.iterations} long_iterations={args.long_iterations}"
                f" long_every={args.long_every} log_loss={args.log_loss} early_weight={args.early_weight}"
                f" msssim_weight={args.msssim_weight} colour_weight={args.colour_weight}"
                f" msssim_covers_border={args.msssim_covers_border} edge_weight={args.edge_weight}"
                f" ssimulacra2_weight={args.ssimulacra2_weight} crop={args.crop} batch={args.batch}",
                "",
                "",
                f"{time.time():.0f}",
            ]
        )
        ema = None
        while not stopping.is_set() and int(global_step) < args.steps and time.monotonic() < deadline:
            step = int(global_step)
            lr = learning_rate(step, args.lr, args.lr_half_life, args.lr_decay_start)
            iterations = unrolled_iterations(step, args.iterations, args.long_iterations, args.long_every)
            stop_at = _stop_masks(rng, args.batch, cells, iterations, args.stop_fraction)
            loss = float(train_steps[iterations](sampler.next_batch(), stop_at, tf.constant(lr, tf.float32)))
            if not math.isfinite(loss):
                raise FloatingPointError(f"loss became {loss} at step {step}")
            ema = loss if ema is None else 0.98 * ema + 0.02 * loss
            bar.update(1)
            bar.set_postfix(loss=f"{ema:.4f}", lr=f"{lr:.1e}")
            if step % 50 == 0:
                now = time.monotonic()  # with --hours binding, the bar's end and ETA follow the budget
                rate = (step + 1 - start_step) / (now - started)
                bar.total = min(args.steps, step + 1 + int(rate * max(deadline - now, 0.0)))
                log.writerow([step, f"{loss:.6f}", f"{lr:.3e}", f"{time.time():.0f}"])
                log_file.flush()
            if time.monotonic() - last_save > args.checkpoint_minutes * 60:
                save()
                last_save = time.monotonic()
    print(f"saved {save()} at step {int(global_step)}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--run-dir", default="runs/residual_gru")
    parser.add_argument("--data", default=str(DEFAULT_TRAIN_DIR.resolve()))
    parser.add_argument("--init-from", default="", help="SavedModel version dir to start from")
    parser.add_argument("--steps", type=int, default=1_000_000)
    parser.add_argument("--hours", type=float, default=24.0, help="stop after this wall time")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--crop", type=int, default=32)
    parser.add_argument("--iterations", type=int, default=10, help="unrolled iterations per step")
    parser.add_argument(
        "--long-iterations",
        type=int,
        default=0,
        help="unrolled iterations of every --long-every-th step instead (0: none), so that the iterations "
        "past --iterations, which high targets use, train too",
    )
    parser.add_argument("--long-every", type=int, default=4)
    parser.add_argument(
        "--snapshot-dir",
        default="",
        help="float16 weights kept in the repository: written at each checkpoint, resumed on a new machine",
    )
    parser.add_argument(
        "--adaptive-gain",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="a fresh run's scaled-additive gain estimator (default: as the model it starts from)",
    )
    parser.add_argument("--max-iterations", type=int, default=None, help="a fresh run's iteration budget")
    parser.add_argument(
        "--mixed-precision",
        choices=("auto", "bfloat16", ""),
        default="auto",
        help="bfloat16 convolutions ('auto': where the CPU computes bfloat16 natively; '': float32): a "
        "step in 0.75 s instead of 1.09 on AVX512-BF16 (docs/decisions.md 59)",
    )
    parser.add_argument(
        "--priming",
        type=int,
        default=None,
        help="extra encoder and decoder passes before the first iteration's output (default: as the "
        "run, snapshot or model it starts from)",
    )
    parser.add_argument(
        "--log-loss",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="mean log L1 over iterations (default) instead of mean L1",
    )
    parser.add_argument(
        "--early-weight",
        type=float,
        default=1.0,
        help=f"loss weight of each of the first {EARLY_ITERATIONS} iterations (the rest weigh 1)",
    )
    parser.add_argument(
        "--msssim-weight",
        type=float,
        default=0.0,
        help="weight of log(1 - MS-SSIM) against log L1 in each iteration's loss (crops >= 88 px)",
    )
    parser.add_argument(
        "--colour-weight",
        type=float,
        default=0.0,
        help="weight of log L1 of the 8x8-block chroma added to each iteration's loss",
    )
    parser.add_argument(
        "--msssim-covers-border",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="centre MS-SSIM's windows on every pixel of the crop, its border mirrored",
    )
    parser.add_argument(
        "--edge-weight",
        type=float,
        default=0.0,
        help="weight of log luma-gradient error at the original's edges added to each iteration's loss",
    )
    parser.add_argument(
        "--ssimulacra2-weight",
        type=float,
        default=0.0,
        help="weight of log(100 - SSIMULACRA 2) added to each iteration's loss (crops >= 8 px)",
    )
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--lr-half-life", type=float, default=0.0, help="steps per halving; 0 keeps it")
    parser.add_argument("--lr-decay-start", type=int, default=0, help="step at which halving begins")
    parser.add_argument("--stop-fraction", type=float, default=0.25, help="crops with random per-cell stops")
    parser.add_argument("--checkpoint-minutes", type=float, default=5.0)
    parser.add_argument("--seed", type=int, default=1234)
    train(parser.parse_args(argv))


if __name__ == "__main__":
    main()
