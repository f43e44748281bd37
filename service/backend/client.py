"""Client for TensorFlow Serving's gRPC API (PredictionService and ModelService).

Deadlines on every call, retries with exponential backoff on UNAVAILABLE and CANCELLED, message-size
limits on the channel, and the model version pinned in every request.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass

import grpc
import numpy as np
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    prediction_service_pb2_grpc,
)

from service import metrics
from service.backend.tensors import from_tensor_proto, predict_request
from service.errors import BackendUnavailable, ModelVersionNotServed, ServiceError
from service.logs import REQUEST_ID

__all__ = ["COMPUTE_METADATA_KEY", "BackendClient", "ModelVersionStatus", "channel_options"]

#: Trailing metadata in which the embedded backend reports a Predict's model compute seconds.
COMPUTE_METADATA_KEY = "x-rgic-compute-seconds"

# The gateway never cancels its own calls, so a CANCELLED comes from a backend shutting down: gRPC
# cancels the calls still queued there (grpc/grpc#41785). Predict is idempotent, so both are retried.
_RETRYABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED}
_UNAVAILABLE = {*_RETRYABLE, grpc.StatusCode.DEADLINE_EXCEEDED}


def channel_options(max_message_bytes: int) -> list[tuple[str, int]]:
    """gRPC options that lift the 4 MB default message limit (used by client and server alike)."""
    return [
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.max_receive_message_length", max_message_bytes),
    ]


@dataclass(frozen=True)
class ModelVersionStatus:
    version: int
    state: str  # AVAILABLE, LOADING, UNLOADING, END, START, UNKNOWN


class BackendClient:
    """Calls one TF Serving (or embedded) backend at ``address``."""

    def __init__(
        self,
        address: str,
        timeout_seconds: float = 60.0,
        retries: int = 3,
        backoff_seconds: float = 0.2,
        max_message_bytes: int = 512 * 1024 * 1024,
    ) -> None:
        self.address = address
        self._local = threading.local()
        self.timeout_seconds = timeout_seconds
        self.retries = retries
        self.backoff_seconds = backoff_seconds
        # With a dns:/// address naming several TF Serving replicas, spread calls over all of them.
        # A short reconnect backoff lets the gateway notice a restarted backend within seconds.
        options = [
            *channel_options(max_message_bytes),
            ("grpc.lb_policy_name", "round_robin"),
            ("grpc.initial_reconnect_backoff_ms", 250),
            ("grpc.min_reconnect_backoff_ms", 250),
            ("grpc.max_reconnect_backoff_ms", 2000),
        ]
        self._channel = grpc.insecure_channel(address, options=options)
        self._predict = prediction_service_pb2_grpc.PredictionServiceStub(self._channel)
        self._models = model_service_pb2_grpc.ModelServiceStub(self._channel)

    def close(self) -> None:
        self._channel.close()

    def reset_timing(self) -> None:
        """Start accumulating this thread's backend time (see ``timing``)."""
        self._local.timing = {"backend_seconds": 0.0, "model_compute_seconds": 0.0}

    def timing(self) -> dict[str, float]:
        """Seconds this thread spent in backend calls since ``reset_timing``, and of those the model
        compute the backend reported (the embedded backend does; TF Serving does not, giving 0)."""
        return dict(getattr(self._local, "timing", {"backend_seconds": 0.0, "model_compute_seconds": 0.0}))

    def _call(self, what: str, method, request, timeout: float | None = None):
        """Run one RPC with deadline and retries, mapping gRPC failures to service errors."""
        attempt = 0
        while True:
            start = time.perf_counter()
            try:
                response, call = method.with_call(
                    request,
                    timeout=timeout or self.timeout_seconds,
                    metadata=(("x-request-id", REQUEST_ID.get()),),
                )
                elapsed = time.perf_counter() - start
                metrics.BACKEND_LATENCY.labels(what, "ok").observe(elapsed)
                timing = getattr(self._local, "timing", None)
                if timing is not None:
                    timing["backend_seconds"] += elapsed
                    for key, value in call.trailing_metadata() or ():
                        if key == COMPUTE_METADATA_KEY:
                            timing["model_compute_seconds"] += float(value)
                return response
            except grpc.RpcError as error:
                code = error.code()
                metrics.BACKEND_LATENCY.labels(what, code.name.lower()).observe(time.perf_counter() - start)
                metrics.BACKEND_ERRORS.labels(what, code.name.lower()).inc()
                if code in _RETRYABLE and attempt < self.retries:
                    time.sleep(self.backoff_seconds * 2**attempt)
                    attempt += 1
                    continue
                if code in _UNAVAILABLE:
                    raise BackendUnavailable(
                        f"model backend at {self.address} is unavailable ({code.name}): {error.details()}"
                    ) from error
                if code == grpc.StatusCode.NOT_FOUND:
                    raise ModelVersionNotServed(error.details() or "model version not served") from error
                raise ServiceError(f"model backend failed ({code.name}): {error.details()}") from error

    def predict(
        self,
        model_name: str,
        version: int,
        signature: str,
        inputs: Mapping[str, np.ndarray],
        output_filter: list[str] | None = None,
    ) -> dict[str, np.ndarray]:
        """Run ``signature`` of ``model_name``/``version`` on ``inputs``; returns its outputs as arrays."""
        request = predict_request(model_name, signature, inputs, version, output_filter or ())
        response = self._call(signature, self._predict.Predict, request)
        return {name: from_tensor_proto(proto) for name, proto in response.outputs.items()}

    def model_status(self, model_name: str, timeout: float | None = None) -> list[ModelVersionStatus]:
        """Every version of ``model_name`` the backend knows, with its state."""
        request = get_model_status_pb2.GetModelStatusRequest()
        request.model_spec.name = model_name
        response = self._call("get_model_status", self._models.GetModelStatus, request, timeout)
        return [
            ModelVersionStatus(int(s.version), get_model_status_pb2.ModelVersionStatus.State.Name(s.state))
            for s in response.model_version_status
        ]

    def available_versions(self, model_name: str, timeout: float | None = None) -> list[int]:
        """Versions of ``model_name`` currently AVAILABLE, ascending."""
        return sorted(s.version for s in self.model_status(model_name, timeout) if s.state == "AVAILABLE")

    def signature_defs(self, model_name: str, version: int) -> dict:
        """The SignatureDefMap of one model version (GetModelMetadata)."""
        request = get_model_metadata_pb2.GetModelMetadataRequest()
        request.model_spec.name = model_name
        request.model_spec.version.value = version
        request.metadata_field.append("signature_def")
        response = self._call("get_model_metadata", self._predict.GetModelMetadata, request)
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        response.metadata["signature_def"].Unpack(signature_map)
        return dict(signature_map.signature_def)
