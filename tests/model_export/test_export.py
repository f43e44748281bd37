import dataclasses
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

from model_export.export import export_saved_model
from model_export.export import main as export_main
from model_export.model import RecurrentCodec, variables_by_path
from model_export.shipped import (
    restore_codec_weights,
    shipped_config,
    shipped_context_model,
    shipped_metadata,
)
from model_export.snapshot import write_snapshot
from tests.model_export.test_model import TINY
from tests.service.codec.test_entropy import random_context_model

_NO_EARLY_EXIT = {
    "stop_msssim": tf.zeros([1]),
    "stop_psnr": tf.zeros([1]),
    "extra_iterations": tf.zeros([1], tf.int32),
}


def test_context_model_signature_returns_the_integer_model_per_batch_row(exported) -> None:
    _, path = exported
    out = tf.saved_model.load(str(path)).signatures["context_model"](batch=tf.zeros([2], tf.int32))
    expected = random_context_model(TINY.bits_per_cell, iterations=2)
    for name in ("weights", "biases", "table"):
        assert out[name].dtype == tf.int32 and out[name].shape[0] == 2
        np.testing.assert_array_equal(out[name].numpy()[1], getattr(expected, name))


def test_signatures_have_batch_dimension_and_named_io(exported) -> None:
    _, path = exported
    loaded = tf.saved_model.load(str(path))
    sigs = loaded.signatures
    assert set(sigs) == {"compress", "decompress", "encode_step", "decode_step", "context_model"}
    compress = sigs["compress"]
    assert set(compress.structured_input_signature[1]) == {
        "image",
        "iterations",
        "stop_msssim",
        "stop_psnr",
        "extra_iterations",
    }
    assert set(compress.structured_outputs) == {
        "bits",
        "reconstructions",
        "msssim_sums",
        "msssim_positions",
        "squared_errors",
    }
    assert set(sigs["decompress"].structured_outputs) == {"reconstructions", "reconstruction"}
    step = sigs["decode_step"]
    inputs = step.structured_input_signature[1]
    assert set(inputs) == {"bits", "iteration", "reconstruction", *(f"dec_state_{i}" for i in range(1, 5))}
    assert inputs["iteration"].shape.as_list() == [None]  # batched, as TF Serving batching requires
    for spec in inputs.values():
        assert spec.shape[0] is None


def test_saved_model_matches_in_memory_codec_within_its_stored_weights(exported) -> None:
    codec, path = exported
    loaded = tf.saved_model.load(str(path))
    image = tf.cast(tf.random.uniform([1, 32, 32, 3], 0, 255, seed=3), tf.uint8)
    iterations = tf.fill([1, 2, 2], 3)
    served = loaded.signatures["compress"](image=image, iterations=iterations, **_NO_EARLY_EXIT)
    restored = RecurrentCodec(TINY)
    restore_codec_weights(restored, path)
    local = restored.compress(image, iterations)
    np.testing.assert_array_equal(served["bits"].numpy(), local["bits"].numpy())
    np.testing.assert_array_equal(served["reconstructions"].numpy(), local["reconstructions"].numpy())
    # storage only rounds the weights: float16, and the GRU kernels to 1/254 of each channel's range
    originals = dict(variables_by_path(codec))
    for name, mine in variables_by_path(restored):
        original = originals[name]
        quantized = "gru" in name and name.endswith("kernel")
        tolerance = np.abs(original.numpy()).max() / 254 if quantized else 1e-4
        np.testing.assert_allclose(mine.numpy(), original.numpy(), rtol=1e-3, atol=tolerance * 1.01)


def test_the_gru_kernels_are_stored_in_int8_and_every_function_once(exported) -> None:
    _, path = exported
    dtypes = _stored_dtypes(path)
    assert dtypes["codec/enc_gru1/input_conv/kernel"] == tf.int8
    assert dtypes["codec/enc_gru1/input_conv/kernel_scale"] == tf.float16
    assert dtypes["codec/enc_conv/kernel"] == tf.float16
    assert (shipped_metadata(path)["gru_kernels"], shipped_metadata(path)["gates"]) == ("int8", "parts")
    graph = saved_model_pb2.SavedModel.FromString((path / "saved_model.pb").read_bytes()).meta_graphs[0]
    names = [f.signature.name for f in graph.graph_def.library.function]
    for signature in ("compress", "decompress", "encode_step", "decode_step"):
        assert sum(name.startswith(f"__inference_{signature}_") for name in names) == 1, signature


def test_a_float16_export_keeps_float16_kernels(exported, tmp_path) -> None:
    codec, _ = exported
    path = export_saved_model(codec, tmp_path / "tiny" / "2", gru_kernels="float16")
    restored = RecurrentCodec(TINY)
    restore_codec_weights(restored, path)
    for mine, original in zip(restored.variables, codec.variables, strict=True):
        np.testing.assert_allclose(mine.numpy(), original.numpy(), rtol=1e-3, atol=1e-4)


def test_step_signatures_agree_with_fused_decompress(exported) -> None:
    _, path = exported
    _assert_steps_agree_with_fused_decompress(path)


def test_a_primed_codec_exports_its_priming_in_every_signature(exported, tmp_path) -> None:
    codec, _ = exported
    primed = RecurrentCodec(dataclasses.replace(TINY, priming=1))
    primed.copy_weights_from(codec)
    path = export_saved_model(primed, tmp_path / "tiny" / "1", {"training_steps": 7})
    assert shipped_config(path).priming == 1
    _assert_steps_agree_with_fused_decompress(path)
    image = tf.cast(tf.random.uniform([1, 32, 48, 3], 0, 255, seed=5), tf.uint8)
    counts = tf.fill([1, 2, 3], 2)
    exported_out = tf.saved_model.load(str(path)).signatures["compress"](
        image=image, iterations=counts, **_NO_EARLY_EXIT
    )
    in_memory = primed.compress(image, counts)
    np.testing.assert_array_equal(exported_out["bits"].numpy(), in_memory["bits"].numpy())


def _assert_steps_agree_with_fused_decompress(path: Path) -> None:
    sigs = tf.saved_model.load(str(path)).signatures
    image = tf.cast(tf.random.uniform([1, 32, 48, 3], 0, 255, seed=4), tf.uint8)
    bits = sigs["compress"](image=image, iterations=tf.fill([1, 2, 3], 3), **_NO_EARLY_EXIT)["bits"]
    fused = sigs["decompress"](bits=bits)["reconstructions"].numpy()
    d = TINY.decoder_channels
    state = {
        "dec_state_1": tf.zeros([1, 2, 3, d[0]]),
        "dec_state_2": tf.zeros([1, 4, 6, d[1]]),
        "dec_state_3": tf.zeros([1, 8, 12, d[2]]),
        "dec_state_4": tf.zeros([1, 16, 24, d[3]]),
        "reconstruction": tf.zeros([1, 32, 48, 3]),
    }
    for t in range(3):
        out = sigs["decode_step"](bits=bits[:, t], iteration=tf.constant([t]), **state)
        state = {k: out[k] for k in state}
        np.testing.assert_array_equal(out["image"].numpy(), fused[:, t])


def test_export_refuses_to_overwrite_a_version(exported) -> None:
    codec, path = exported
    with pytest.raises(FileExistsError):
        export_saved_model(codec, path)


def test_a_reexport_with_int8_encoder_kernels_decodes_the_versions_bitstreams_exactly(tmp_path) -> None:
    # A version as written before decision 36 (float16 kernels, gates fused, no context model), trained on
    # fewer iterations than it runs: a warm start would move its later gains, a re-export must not.
    tf.random.set_seed(5)
    codec, metadata = RecurrentCodec(TINY), {"training_iterations": 1}
    old = export_saved_model(codec, tmp_path / "1", metadata, gru_kernels="float16", fused_gates=True)
    flags = ["--gru-kernels", "int8-encoder", "--fused-gates"]
    export_main(["--init-from", str(old), "--models-dir", str(tmp_path), "--version", "2", *flags])
    new = tmp_path / "residual_gru" / "2"
    old_sigs, new_sigs = (tf.saved_model.load(str(p)).signatures for p in (old, new))
    assert "context_model" not in new_sigs
    image = tf.cast(tf.random.uniform([1, 32, 48, 3], 0, 255, seed=6), tf.uint8)
    counts = tf.constant([[[TINY.max_iterations, 1, 2], [3, TINY.max_iterations, 2]]])
    bits = old_sigs["compress"](image=image, iterations=counts, **_NO_EARLY_EXIT)["bits"]
    np.testing.assert_array_equal(
        new_sigs["decompress"](bits=bits)["reconstructions"].numpy(),
        old_sigs["decompress"](bits=bits)["reconstructions"].numpy(),
    )
    dtypes = _stored_dtypes(new)
    assert dtypes["codec/enc_gru3/input_conv/kernel"] == tf.int8
    assert dtypes["codec/dec_gru1/input_conv/kernel"] == tf.float16
    metadata = shipped_metadata(new)
    assert (metadata["gru_kernels"], metadata["gates"]) == ("int8-encoder", "fused")
    assert metadata["training_iterations"] == 1 and "context_model_images" not in metadata


def _stored_dtypes(version_dir: Path) -> dict[str, tf.DType]:
    """Each stored variable's dtype, by its path in the codec."""
    reader = tf.train.load_checkpoint(str(version_dir / "variables" / "variables"))
    stored = reader.get_variable_to_dtype_map().items()
    return {name.split("/.ATTRIBUTES")[0]: dtype for name, dtype in stored}


def test_a_snapshot_exports_with_another_versions_context_model(exported, tmp_path) -> None:
    codec, path = exported
    snapshot = tmp_path / "snapshot"
    write_snapshot(codec, snapshot, 11, 2)
    flags = ["--snapshot-dir", str(snapshot), "--context-from", str(path)]
    export_main([*flags, "--models-dir", str(tmp_path), "--version", "3"])
    new = tmp_path / "residual_gru" / "3"
    shipped = shipped_context_model(new)
    assert shipped is not None
    expected = random_context_model(TINY.bits_per_cell, iterations=2)
    np.testing.assert_array_equal(shipped.table, expected.table)
    assert shipped_metadata(new)["training_steps"] == 11
