"""The training snapshot kept in the repository: float16 weights that a new machine resumes from.

Every session starts on a fresh machine where ``runs/`` is gone, so training writes its newest
weights here as well, at every checkpoint (``train --snapshot-dir``), and ``make train`` resumes from
them. One snapshot, replaced each time, never added beside the last:

    <dir>/weights.npz     every codec variable by its attribute path, float16 (log_gain float32)
    <dir>/training.json   configuration, training step, unrolled iterations

The optimizer's moments are not kept (they would triple the size): a resumed run starts them afresh.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np
import tensorflow as tf

from model_export.model import CodecConfig, RecurrentCodec, variables_by_path

__all__ = ["has_snapshot", "restore_snapshot", "snapshot_config", "snapshot_metadata", "write_snapshot"]

WEIGHTS = "weights.npz"
METADATA = "training.json"


def has_snapshot(directory: Path) -> bool:
    """Whether ``directory`` holds a complete snapshot."""
    return (directory / WEIGHTS).exists() and (directory / METADATA).exists()


def snapshot_metadata(directory: Path) -> dict:
    """The snapshot's ``training.json``: config, step, iterations."""
    return json.loads((directory / METADATA).read_text())


def snapshot_config(directory: Path) -> CodecConfig:
    """The codec configuration the snapshot was trained with."""
    return CodecConfig.from_json(json.dumps(snapshot_metadata(directory)["config"]))


def write_snapshot(codec: RecurrentCodec, directory: Path, step: int, iterations: int) -> None:
    """Replace the snapshot in ``directory`` with ``codec``'s weights at ``step`` (atomic per file)."""
    directory.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for path, variable in variables_by_path(codec):
        value = variable.numpy()
        arrays[path] = value.astype(np.float32 if path == "log_gain" else np.float16)
    info = {"config": json.loads(codec.config.to_json()), "step": step, "training_iterations": iterations}
    _atomic_write(directory / WEIGHTS, lambda f: np.savez(f, **arrays))
    _atomic_write(directory / METADATA, lambda f: f.write(json.dumps(info, indent=2).encode()))


def restore_snapshot(codec: RecurrentCodec, directory: Path) -> int:
    """Load the snapshot's weights into ``codec`` (same configuration); returns its training step."""
    with np.load(directory / WEIGHTS) as arrays:
        for path, variable in variables_by_path(codec):
            if path not in arrays:
                raise ValueError(f"snapshot in {directory} has no weights for {path}")
            variable.assign(tf.cast(arrays[path], variable.dtype))
    return int(snapshot_metadata(directory)["step"])


def _atomic_write(path: Path, write) -> None:
    with tempfile.NamedTemporaryFile(dir=path.parent, delete=False, suffix=".tmp") as f:
        write(f)
    os.replace(f.name, path)
