"""The backend client's mapping of gRPC failures, against a real gRPC server that injects them."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent import futures

import grpc
import numpy as np
import pytest
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from service.backend.client import BackendClient
from service.errors import BackendUnavailable, ServiceError


class _FailingPredictions(prediction_service_pb2_grpc.PredictionServiceServicer):
    """Fails the first ``failures`` Predict calls with ``code``, then answers with an empty response."""

    def __init__(self, code: grpc.StatusCode, failures: int) -> None:
        self.code = code
        self.failures = failures
        self.calls = 0

    def Predict(self, request, context):  # noqa: N802 (gRPC method name)
        self.calls += 1
        if self.calls <= self.failures:
            context.abort(self.code, "injected")
        return predict_pb2.PredictResponse()


@pytest.fixture
def serve_failing() -> Iterator:
    servers: list[grpc.Server] = []

    def start(code: grpc.StatusCode, failures: int) -> tuple[BackendClient, _FailingPredictions]:
        servicer = _FailingPredictions(code, failures)
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(servicer, server)
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        servers.append(server)
        client = BackendClient(f"127.0.0.1:{port}", timeout_seconds=5, retries=2, backoff_seconds=0.01)
        return client, servicer

    yield start
    for server in servers:
        server.stop(grace=None)


def _predict(client: BackendClient) -> dict[str, np.ndarray]:
    return client.predict("residual_gru", 1, "decompress", {"bits": np.zeros((1, 1, 1, 1), np.float32)})


@pytest.mark.parametrize("code", [grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED])
def test_transient_failures_are_retried(serve_failing, code: grpc.StatusCode) -> None:
    client, servicer = serve_failing(code, failures=2)
    assert _predict(client) == {}
    assert servicer.calls == 3


def test_cancelled_by_a_stopping_backend_is_unavailable_once_retries_run_out(serve_failing) -> None:
    client, servicer = serve_failing(grpc.StatusCode.CANCELLED, failures=10)
    with pytest.raises(BackendUnavailable, match="CANCELLED"):
        _predict(client)
    assert servicer.calls == 3


def test_other_failures_are_not_retried(serve_failing) -> None:
    client, servicer = serve_failing(grpc.StatusCode.INTERNAL, failures=10)
    with pytest.raises(ServiceError, match="INTERNAL") as raised:
        _predict(client)
    assert not isinstance(raised.value, BackendUnavailable)
    assert servicer.calls == 1
