import numpy as np
import pytest
import tensorflow as tf

from model_export.export import export_saved_model
from model_export.model import RecurrentCodec
from model_export.shipped import restore_codec_weights
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


def test_saved_model_matches_in_memory_codec_within_float16_weights(exported) -> None:
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
    # float16 storage only rounds the weights
    for mine, original in zip(restored.variables, codec.variables, strict=True):
        np.testing.assert_allclose(mine.numpy(), original.numpy(), rtol=1e-3, atol=1e-4)


def test_step_signatures_agree_with_fused_decompress(exported) -> None:
    _, path = exported
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
