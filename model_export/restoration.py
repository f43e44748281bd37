"""The receiver's learned restoration filter: a small residual CNN on a decoded image.

::

    decoded RGB ─┬─▶ [RGB, log step, x mod 8, y mod 8] ─▶ pixel-unshuffle 2 ─▶ 6 × (3×3 conv, 24, ReLU)
                 │                                                       ─▶ 3×3 conv ─▶ pixel-shuffle 2
                 └──────────────────────────────────────────────────────────────────── + ─▶ restored

The step the layer was quantised with (its coarseness) and the position within the 8×8 block grid are
inputs, so one filter serves every rate and knows where block edges are. About 6 kMAC per pixel, after
the low-complexity filters of NNVC (LOP) and VRCNN. Trained on the refinement layer's decoded images of
training photos (``model_export/train_restoration.py``) with SSIMULACRA 2 in the loss.
"""

from __future__ import annotations

import math
from pathlib import Path

import tensorflow as tf

from model_export.layers import Conv2D

__all__ = ["CHANNELS", "LAYERS", "RestorationFilter", "export", "load_exported", "step_feature"]

CHANNELS = 24
LAYERS = 6
_BLOCK = 8
#: The log step is centred and scaled to about [-1, 1] over the steps the layer uses (0.5-256).
_LOG_STEP_CENTRE, _LOG_STEP_SCALE = math.log(16.0), 3.0


def step_feature(step: tf.Tensor) -> tf.Tensor:
    """The filter's rate input: the layer's quantiser step [B] as a centred log."""
    return (tf.math.log(tf.cast(step, tf.float32)) - _LOG_STEP_CENTRE) / _LOG_STEP_SCALE


class RestorationFilter(tf.Module):
    """``restore(images, steps)``: images float32 [B,H,W,3] in [0, 255] (H, W even), steps [B]; returns the
    restored images in [0, 255] (float32, not rounded)."""

    def __init__(self, name: str | None = None) -> None:
        super().__init__(name=name)
        inputs = 4 * 6  # RGB, step, two grid phases, per pixel of a 2×2 cell
        self.convs = [Conv2D(inputs if i == 0 else CHANNELS, CHANNELS, 3) for i in range(LAYERS)]
        self.output_conv = Conv2D(CHANNELS, 4 * 3, 3)
        # start as the identity: the last layer's kernel at zero
        self.output_conv.kernel.assign(tf.zeros_like(self.output_conv.kernel))

    def __call__(self, images: tf.Tensor, steps: tf.Tensor) -> tf.Tensor:
        shape = tf.shape(images)
        batch, height, width = shape[0], shape[1], shape[2]
        x = images / 127.5 - 1.0
        rate = tf.broadcast_to(step_feature(steps)[:, None, None, None], [batch, height, width, 1])
        rows = tf.cast(tf.range(height) % _BLOCK, tf.float32) / (_BLOCK - 1) - 0.5
        columns = tf.cast(tf.range(width) % _BLOCK, tf.float32) / (_BLOCK - 1) - 0.5
        phase_y = tf.broadcast_to(rows[None, :, None, None], [batch, height, width, 1])
        phase_x = tf.broadcast_to(columns[None, None, :, None], [batch, height, width, 1])
        h = tf.nn.space_to_depth(tf.concat([x, rate, phase_y, phase_x], axis=-1), 2)
        for conv in self.convs:
            h = tf.nn.relu(conv(h))
        residual = tf.nn.depth_to_space(self.output_conv(h), 2)
        return tf.clip_by_value((x + residual + 1.0) * 127.5, 0.0, 255.0)


class _Servable(tf.Module):
    """The filter as TF Serving runs it: uint8 images in and out."""

    def __init__(self, model: RestorationFilter) -> None:
        super().__init__()
        self.model = model

    @tf.function(
        input_signature=[
            tf.TensorSpec([None, None, None, 3], tf.uint8, name="image"),
            tf.TensorSpec([None], tf.float32, name="step"),
        ]
    )
    def restore(self, image: tf.Tensor, step: tf.Tensor) -> dict[str, tf.Tensor]:
        height, width = tf.shape(image)[1], tf.shape(image)[2]
        # odd sides: the edge row or column repeated (the filter works on 2×2 cells)
        padded = tf.pad(image, [[0, 0], [0, height % 2], [0, width % 2], [0, 0]], "SYMMETRIC")
        restored = self.model(tf.cast(padded, tf.float32), step)[:, :height, :width]
        return {"image": tf.cast(tf.round(restored), tf.uint8)}


def export(model: RestorationFilter, path: Path, trained_steps: int = 0) -> None:
    """Write the filter as a SavedModel with one signature, ``restore`` (image uint8 [B,H,W,3], step
    float32 [B] → image uint8 [B,H,W,3]), standard ops only; ``assets.extra/trained_steps`` records its
    training."""
    servable = _Servable(model)
    tf.saved_model.save(servable, str(path), signatures={"restore": servable.restore})
    (Path(path) / "assets.extra").mkdir(exist_ok=True)
    (Path(path) / "assets.extra" / "trained_steps").write_text(f"{trained_steps}\n")


def load_exported(model: RestorationFilter, path: Path) -> int:
    """Read an exported filter's weights into ``model`` (the SavedModel's variables are a checkpoint whose
    root holds the filter as ``model``); returns the steps it was trained."""
    tf.train.Checkpoint(model=model).read(str(Path(path) / "variables" / "variables")).expect_partial()
    steps = Path(path) / "assets.extra" / "trained_steps"
    return int(steps.read_text()) if steps.exists() else 0
