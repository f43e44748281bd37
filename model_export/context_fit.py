"""Fit the entropy coder's context model (``service/codec/context_model.py``) to one codec.

The codec encodes centre crops of training images (never Kodak); a logistic regression per
iteration and channel learns P(bit = +1) from the bits decoded before it; weights are rounded to
integers so that coding is deterministic. Export (``model_export/export.py``) runs this and ships
the result in the SavedModel.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow as tf
from tqdm import tqdm

from model_export.data import load_training_images
from model_export.model import CELL_SIZE, RecurrentCodec
from model_export.train import Adam
from service.codec.context_model import (
    LOGIT_FRACTION_BITS,
    ContextModel,
    feature_count,
    feature_rows,
    sigmoid_table,
)

__all__ = ["collect_codes", "fit_context_model", "training_codes"]

#: Crops of at most this size (pixels per side) keep code collection fast and images varied.
CROP_HEIGHT, CROP_WIDTH = 384, 512


def collect_codes(codec: RecurrentCodec, images: list[np.ndarray], iterations: int) -> list[np.ndarray]:
    """The codec's bits int8 [iterations, h, w, C] for a centre crop of every image."""
    out = []
    for image in tqdm(images, desc="encoding training crops", unit="image"):
        h = min(image.shape[0], CROP_HEIGHT) // CELL_SIZE * CELL_SIZE
        w = min(image.shape[1], CROP_WIDTH) // CELL_SIZE * CELL_SIZE
        y, x = (image.shape[0] - h) // 2, (image.shape[1] - w) // 2
        crop = image[None, y : y + h, x : x + w]
        counts = tf.fill([1, h // CELL_SIZE, w // CELL_SIZE], iterations)
        out.append(codec.compress(tf.constant(crop), counts)["bits"].numpy()[0])
    return out


def training_codes(
    codec: RecurrentCodec, data_dir: Path, images: int, iterations: int, seed: int = 0
) -> list[np.ndarray]:
    """Codes of ``images`` training images chosen at random (Kodak is refused by the loader)."""
    everything = load_training_images(data_dir)
    chosen = np.random.default_rng(seed).choice(len(everything), min(images, len(everything)), replace=False)
    return collect_codes(codec, [everything[i] for i in sorted(chosen)], iterations)


def _fit_logistic(x: np.ndarray, y: np.ndarray, steps: int, l2: float) -> tuple[np.ndarray, np.ndarray]:
    """Per channel logistic regression: x [C, n, F], y [C, n] in {0, 1} → weights [C, F], biases [C]."""
    x_t, y_t = tf.constant(x, tf.float32), tf.constant(y, tf.float32)
    weights = tf.Variable(tf.zeros(x.shape[::2]))
    biases = tf.Variable(tf.zeros(x.shape[:1]))
    optimizer = Adam([weights, biases])
    learning_rate = tf.constant(0.05)

    @tf.function
    def step() -> tf.Tensor:
        with tf.GradientTape() as tape:
            logits = tf.einsum("cnf,cf->cn", x_t, weights) + biases[:, None]
            loss = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(y_t, logits))
            loss += l2 * tf.reduce_mean(tf.square(weights))
        optimizer.apply(tape.gradient(loss, [weights, biases]), [weights, biases], learning_rate)
        return loss

    for _ in range(steps):
        step()
    return weights.numpy(), biases.numpy()


def fit_context_model(
    codes: list[np.ndarray], iterations: int, steps: int = 250, l2: float = 1e-4
) -> ContextModel:
    """Integer context model fitted to ``codes`` (uniform bits, [N ≥ iterations, h, w, C] each)."""
    channels = codes[0].shape[-1]
    weights = np.zeros((iterations, channels, feature_count(channels)), np.int64)
    biases = np.zeros((iterations, channels), np.int64)
    scale = float(1 << LOGIT_FRACTION_BITS)
    for t in tqdm(range(iterations), desc="fitting context model", unit="iteration"):
        x = np.stack([np.concatenate([feature_rows(b, t, c) for b in codes]) for c in range(channels)])
        y = np.stack([np.concatenate([b[t, ..., c].reshape(-1) > 0 for b in codes]) for c in range(channels)])
        w, b = _fit_logistic(x.astype(np.float32), y.astype(np.float32), steps, l2)
        weights[t] = np.round(w * scale)
        biases[t] = np.round(b * scale)
    return ContextModel(weights=weights, biases=biases, table=sigmoid_table().astype(np.int64))
