"""The embedded backend over real gRPC, through the same client the gateway uses."""

import os

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.protobuf import rewriter_config_pb2

from model_export.quality_terms import msssim_cell_terms
from service.backend.client import BackendClient
from service.backend.embedded import LoadedModel, session_config
from service.backend.tensors import to_tensor_proto
from service.errors import BackendUnavailable, ModelVersionNotServed, ServiceError
from tests.conftest import MODEL_CONFIG, free_port


def test_status_and_metadata(backend_client: BackendClient) -> None:
    versions = backend_client.available_versions("residual_gru")
    assert versions
    defs = backend_client.signature_defs("residual_gru", versions[-1])
    assert {"compress", "decompress", "encode_step", "decode_step"} <= set(defs)
    early_exit = {"stop_msssim", "stop_psnr", "extra_iterations"}
    assert set(defs["compress"].inputs) == {"image", "iterations", *early_exit}


def test_predict_compress_then_decompress_is_bit_exact(backend_client: BackendClient) -> None:
    version = backend_client.available_versions("residual_gru")[-1]
    image = np.random.default_rng(0).integers(0, 256, (2, 32, 64, 3), dtype=np.uint8)
    inputs = {
        "image": image,
        "iterations": np.full((2, 2, 4), 3, np.int32),
        "stop_msssim": np.zeros(2, np.float32),
        "stop_psnr": np.zeros(2, np.float32),
        "extra_iterations": np.zeros(2, np.int32),
    }
    out = backend_client.predict("residual_gru", version, "compress", inputs)
    assert out["bits"].shape[:2] == (2, 3) and out["reconstructions"].shape == (2, 3, 32, 64, 3)
    again = backend_client.predict("residual_gru", version, "decompress", {"bits": out["bits"]})
    np.testing.assert_array_equal(again["reconstructions"], out["reconstructions"])


def test_unknown_version_model_and_bad_inputs(backend_client: BackendClient) -> None:
    image = np.zeros((1, 16, 16, 3), np.uint8)
    iterations = np.ones((1, 1, 1), np.int32)
    with pytest.raises(ModelVersionNotServed, match="999"):
        backend_client.predict("residual_gru", 999, "compress", {"image": image, "iterations": iterations})
    with pytest.raises(ModelVersionNotServed):
        backend_client.model_status("no_such_model")
    version = backend_client.available_versions("residual_gru")[-1]
    with pytest.raises(ServiceError, match="INVALID_ARGUMENT"):
        backend_client.predict("residual_gru", version, "compress", {"image": image})


def test_a_wrong_dtype_or_output_is_invalid_and_the_filter_returns_only_what_it_names(
    backend_client: BackendClient,
) -> None:
    version = backend_client.available_versions("residual_gru")[-1]
    bits = np.ones((1, 2, 1, 1, 32), np.int8)
    with pytest.raises(ServiceError, match=r"INVALID_ARGUMENT.*must be int8"):
        backend_client.predict("residual_gru", version, "decompress", {"bits": bits.astype(np.float32)})
    with pytest.raises(ServiceError, match=r"INVALID_ARGUMENT.*alias not found"):
        backend_client.predict("residual_gru", version, "decompress", {"bits": bits}, ["nothing"])
    out = backend_client.predict("residual_gru", version, "decompress", {"bits": bits}, ["reconstruction"])
    assert set(out) == {"reconstruction"} and out["reconstruction"].shape == (1, 16, 16, 3)


def test_bfloat16_sessions_rewrite_the_network_and_keep_the_quality_windows_in_float32() -> None:
    assert session_config("").graph_options.rewrite_options.auto_mixed_precision_onednn_bfloat16 == 0
    on = session_config("bfloat16").graph_options.rewrite_options.auto_mixed_precision_onednn_bfloat16
    assert on == rewriter_config_pb2.RewriterConfig.ON
    assert "DepthwiseConv2dNative" in os.environ["TF_AUTO_MIXED_PRECISION_GRAPH_REWRITE_ALLOWLIST_REMOVE"]
    with pytest.raises(ValueError, match="mixed_precision"):
        session_config("float16")


def test_bfloat16_stops_where_float32_does_with_quality_terms_computed_in_float32(
    kodak_image: np.ndarray,
) -> None:
    """Early exit and rate control read the quality terms the model computes beside the network: in
    bfloat16 they would be noise (variances are differences of large sums), so they stay float32."""
    path = MODEL_CONFIG.parent / "residual_gru" / "4"
    crop = kodak_image[None, :128, :192]
    inputs = {
        "image": crop,
        "iterations": np.full((1, 8, 12), 10, np.int32),
        "stop_msssim": np.full(1, 0.95, np.float32),
        "stop_psnr": np.zeros(1, np.float32),
        "extra_iterations": np.zeros(1, np.int32),
    }
    protos = {key: to_tensor_proto(value) for key, value in inputs.items()}
    full, mixed = (
        LoadedModel("residual_gru", 4, path, precision).run("compress", protos)[0]
        for precision in ("", "bfloat16")
    )
    assert full["bits"].shape[1] == mixed["bits"].shape[1] < 10
    error = np.abs(mixed["reconstructions"].astype(int) - full["reconstructions"]).mean()
    assert error < 0.5
    last = tf.cast(mixed["reconstructions"][:, -1], tf.float32)
    sums, _ = msssim_cell_terms(tf.cast(crop, tf.float32), last)
    np.testing.assert_allclose(mixed["msssim_sums"][:, -1], sums.numpy(), rtol=1e-4, atol=1e-3)


def test_unreachable_backend_is_unavailable_after_retries() -> None:
    client = BackendClient(f"127.0.0.1:{free_port()}", timeout_seconds=1, retries=2, backoff_seconds=0.01)
    with pytest.raises(BackendUnavailable):
        client.available_versions("residual_gru")
    client.close()
