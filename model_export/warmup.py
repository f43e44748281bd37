"""SavedModel warm-up requests, the file TensorFlow Serving replays when it loads a version.

TF Serving runs the records of ``assets.extra/tf_serving_warmup_requests`` (a TFRecord of
``PredictionLog``s) before it marks a version available, so the first real request does not pay for
the runtime's lazy initialisation (about 0.7 s for ``compress`` and ``decompress`` on 2 CPU cores).
The embedded backend replays the same file. The requests are small (32×32, 2 iterations; ``decode_step``
16×16, whose four float32 states made most of the file at 32×32): the one-time cost is per signature, not
per image size.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

from model_export.model import CELL_SIZE, CodecConfig
from service.backend.tensors import predict_request

__all__ = ["WARMUP_FILE", "warmup_requests", "write_warmup_requests"]

#: Where TF Serving looks for warm-up requests, relative to a version directory.
WARMUP_FILE = Path("assets.extra") / "tf_serving_warmup_requests"
_SIDE, _STEP_SIDE, _ITERATIONS = 32, 16, 2


def _inputs(config: CodecConfig) -> dict[str, dict[str, np.ndarray]]:
    rng = np.random.default_rng(0)
    cells = _SIDE // CELL_SIZE
    bits = rng.choice(np.array([-1, 1], np.int8), (1, _ITERATIONS, cells, cells, config.bits_per_cell))
    states = {
        f"dec_state_{i + 1}": np.zeros((1, _STEP_SIDE // f, _STEP_SIDE // f, c), np.float32)
        for i, (f, c) in enumerate(config.decoder_state_shapes)
    }
    return {
        "compress": {
            "image": rng.integers(0, 256, (1, _SIDE, _SIDE, 3), dtype=np.uint8),
            "iterations": np.full((1, cells, cells), _ITERATIONS, np.int32),
            "stop_msssim": np.zeros(1, np.float32),
            "stop_psnr": np.zeros(1, np.float32),
            "extra_iterations": np.zeros(1, np.int32),
        },
        "decompress": {"bits": bits},
        "decode_step": {
            "bits": bits[:, 0, : _STEP_SIDE // CELL_SIZE, : _STEP_SIDE // CELL_SIZE],
            "iteration": np.zeros(1, np.int32),
            "reconstruction": np.zeros((1, _STEP_SIDE, _STEP_SIDE, 3), np.float32),
            **states,
        },
    }


def write_warmup_requests(version_dir: Path, model_name: str, config: CodecConfig) -> Path:
    """Write one small request per heavy signature into ``version_dir``'s warm-up file."""
    path = Path(version_dir) / WARMUP_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for signature, inputs in _inputs(config).items():
            request = predict_request(model_name, signature, inputs)
            log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())
    return path


def warmup_requests(version_dir: Path, limit: int = 1000) -> Iterator[predict_pb2.PredictRequest]:
    """The Predict requests of ``version_dir``'s warm-up file (none if it has none), at most ``limit``
    as TF Serving allows."""
    path = Path(version_dir) / WARMUP_FILE
    if not path.exists():
        return
    for record in tf.data.TFRecordDataset(str(path)).take(limit):
        log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
        if log.HasField("predict_log"):
            yield log.predict_log.request
