"""Read back what an exported model version holds: its metadata, configuration and weights.

Training resumes from the shipped model on a new machine (``train --init-from``), and export can
re-export a version with a new context model (``export --init-from``); both read a version
directory through these functions.
"""

from __future__ import annotations

import json
from pathlib import Path

import tensorflow as tf

from model_export.model import CodecConfig, RecurrentCodec
from service.codec.context_model import ContextModel

__all__ = [
    "CODEC_METADATA",
    "GATES",
    "GRU_KERNELS",
    "GRU_KERNEL_STORAGE",
    "restore_codec_weights",
    "shipped_config",
    "shipped_context_model",
    "shipped_metadata",
    "shipped_trained_iterations",
    "stored_codec",
]

#: The file under ``assets/`` of every exported version that records its configuration and origin.
CODEC_METADATA = "codec.json"
#: The metadata key naming how the GRU cells' kernels are stored, one of ``GRU_KERNEL_STORAGE``.
GRU_KERNELS = "gru_kernels"
#: Each storage's kernel dtypes, (encoder's cells, decoder's cells): "int8" from version 7; "int8-encoder"
#: for re-exports of earlier versions, whose bitstreams the decoder's float16 kernels decode exactly
#: as before (docs/decisions.md 47); "float16" before, and when the metadata does not say.
GRU_KERNEL_STORAGE = {
    "int8": (tf.int8, tf.int8),
    "int8-encoder": (tf.int8, tf.float16),
    "float16": (tf.float16, tf.float16),
}
#: The metadata key naming how each GRU cell's gates are computed: "parts" (one convolution per gate,
#: from version 8) or "fused" (one convolution, its output split; versions up to 7 and their re-exports).
GATES = "gates"


def shipped_metadata(version_dir: Path) -> dict:
    """The version's ``assets/codec.json``: model name, configuration, training steps, ... ."""
    return json.loads((Path(version_dir) / "assets" / CODEC_METADATA).read_text())


def shipped_config(version_dir: Path) -> CodecConfig:
    """The codec configuration the version was exported with."""
    return CodecConfig.from_json(json.dumps(shipped_metadata(version_dir)["config"]))


def stored_codec(config: CodecConfig, gru_kernels: str, fused_gates: bool = False) -> RecurrentCodec:
    """A codec with a version's storage: float16 weights, the GRU kernels as ``gru_kernels`` (a key of
    ``GRU_KERNEL_STORAGE``) says; ``fused_gates`` as :class:`ConvGRUCell` takes it."""
    encoder_kernels, decoder_kernels = GRU_KERNEL_STORAGE[gru_kernels]
    return RecurrentCodec(
        config,
        weight_dtype=tf.float16,
        gru_kernel_dtype=encoder_kernels,
        decoder_gru_kernel_dtype=decoder_kernels,
        fused_gates=fused_gates,
    )


def restore_codec_weights(codec: RecurrentCodec, version_dir: Path, warm_start: bool = True) -> None:
    """Load the codec's variables from an exported SavedModel (weights may be stored in float16, GRU
    kernels in int8); the version's configuration may differ from ``codec``'s where a warm start allows
    (:meth:`RecurrentCodec.copy_weights_from`). With ``warm_start`` the gains of the iterations the
    version was not trained on continue its trained ones; without, every weight is the version's own
    (a re-export decodes the version's bitstreams as it does)."""
    storage = shipped_metadata(version_dir).get(GRU_KERNELS, "float16")
    shipped = stored_codec(shipped_config(version_dir), storage)
    checkpoint = tf.train.Checkpoint(codec=shipped)
    status = checkpoint.read(str(Path(version_dir) / "variables" / "variables"))
    status.expect_partial().assert_existing_objects_matched()
    trained = shipped_trained_iterations(version_dir) if warm_start else None
    codec.copy_weights_from(shipped, trained_iterations=trained)


def shipped_trained_iterations(version_dir: Path) -> int:
    """How many iterations the version was trained to unroll: its later per-iteration gains are untrained.
    Versions up to 4 do not record it: they were trained on 10 (docs/decisions.md 9)."""
    return int(shipped_metadata(version_dir).get("training_iterations", 10))


def shipped_context_model(version_dir: Path) -> ContextModel | None:
    """The entropy coder's context model the version ships (its ``context_model`` signature), if any."""
    signatures = tf.saved_model.load(str(version_dir)).signatures
    if "context_model" not in signatures:
        return None
    out = signatures["context_model"](batch=tf.zeros([1], tf.int32))
    return ContextModel.from_arrays({name: value.numpy()[0] for name, value in out.items()})
