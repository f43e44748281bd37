"""The embedded backend over real gRPC, through the same client the gateway uses."""

import numpy as np
import pytest

from service.backend.client import BackendClient
from service.errors import BackendUnavailable, ModelVersionNotServed, ServiceError
from tests.conftest import free_port


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


def test_unreachable_backend_is_unavailable_after_retries() -> None:
    client = BackendClient(f"127.0.0.1:{free_port()}", timeout_seconds=1, retries=2, backoff_seconds=0.01)
    with pytest.raises(BackendUnavailable):
        client.available_versions("residual_gru")
    client.close()
