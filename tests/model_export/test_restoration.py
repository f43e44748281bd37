"""The restoration filter: an identity at the start, its servable, and training that lowers its loss."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from model_export import ssimulacra2
from model_export.restoration import RestorationFilter, export, load_exported
from model_export.train import Adam


def _busy(height: int, width: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (height, width, 3)).astype(np.uint8)


def test_a_new_filter_is_the_identity() -> None:
    images = tf.constant(_busy(32, 48)[None], tf.float32)
    restored = RestorationFilter()(images, tf.constant([12.0]))
    np.testing.assert_allclose(restored.numpy(), images.numpy(), atol=1e-3)


def test_the_servable_takes_uint8_of_any_size(tmp_path) -> None:
    tf.random.set_seed(3)
    model = RestorationFilter()
    model.output_conv.kernel.assign(tf.random.normal(model.output_conv.kernel.shape, stddev=0.05))
    export(model, tmp_path / "1")
    loaded = tf.saved_model.load(str(tmp_path / "1"))
    image = _busy(31, 45)
    out = loaded.signatures["restore"](image=tf.constant(image[None]), step=tf.constant([20.0]))["image"]
    assert out.dtype == tf.uint8 and out.shape == (1, 31, 45, 3)
    padded = np.pad(image, ((0, 1), (0, 1), (0, 0)), mode="edge")
    direct = model(tf.constant(padded[None], tf.float32), tf.constant([20.0]))[0, :31, :45]
    np.testing.assert_array_equal(out[0].numpy(), np.round(direct.numpy()).astype(np.uint8))
    assert not np.array_equal(out[0].numpy(), image)


def test_training_resumes_from_an_exported_filter(tmp_path) -> None:
    tf.random.set_seed(4)
    model = RestorationFilter()
    model.output_conv.kernel.assign(tf.random.normal(model.output_conv.kernel.shape, stddev=0.05))
    export(model, tmp_path / "1", trained_steps=1234)
    again = RestorationFilter()
    assert load_exported(again, tmp_path / "1") == 1234
    images, steps = tf.constant(_busy(16, 24)[None], tf.float32), tf.constant([8.0])
    np.testing.assert_array_equal(again(images, steps).numpy(), model(images, steps).numpy())


def test_a_few_steps_raise_the_score_of_a_blurred_image() -> None:
    """What training does: on blurred crops of a photo-like image, SSIMULACRA 2 of the output rises."""
    tf.random.set_seed(0)
    rng = np.random.default_rng(0)
    original = tf.constant(
        np.cumsum(np.cumsum(rng.normal(size=(2, 64, 64, 3)), 1), 2) % 255, tf.float32
    )  # smooth ramps with sharp wraps: edges that a blur loses
    blurred = tf.nn.avg_pool2d(tf.pad(original, [[0, 0], [1, 1], [1, 1], [0, 0]], "SYMMETRIC"), 3, 1, "VALID")
    model = RestorationFilter()
    variables = list(model.trainable_variables)
    optimizer = Adam(variables)
    steps = tf.constant([30.0, 30.0])

    def score() -> float:
        return float(tf.reduce_mean(ssimulacra2.scores(original, model(blurred, steps))))

    before = score()
    for _ in range(30):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(
                100.0 - tf.cast(ssimulacra2.scores(original, model(blurred, steps)), tf.float32)
            )
        optimizer.apply(tape.gradient(loss, variables), variables, tf.constant(1e-3))
    assert score() > before + 1.0
