"""Embedded backend: a gRPC server that speaks TF Serving's PredictionService and ModelService.

It loads the SavedModels named by the same model config file TF Serving reads, so the gateway
talks to it exactly as it talks to ``tensorflow/serving``. For ``make run`` and the tests, on CPU.

    python -m service.backend.embedded --port 8500 --model-config-file models/models.config
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
import time
from collections.abc import Mapping
from concurrent import futures
from pathlib import Path

import grpc
import numpy as np
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    status_pb2,
)

from model_export.warmup import warmup_requests
from service.backend.client import COMPUTE_METADATA_KEY, channel_options
from service.backend.model_config import served_models
from service.backend.tensors import from_tensor_proto, to_tensor_proto
from service.memory import keep_big_blocks_out_of_the_heap

__all__ = ["EmbeddedBackend", "LoadedModel", "serve"]

log = logging.getLogger("rgic.backend")


class LoadedModel:
    """One loaded SavedModel version: its serving signatures and their SignatureDefs, warmed up with
    the version's ``tf_serving_warmup_requests`` as TF Serving does before serving it."""

    def __init__(self, name: str, version: int, path: Path) -> None:
        self.name, self.version = name, version
        self.module = tf.saved_model.load(str(path))
        self.signatures = dict(self.module.signatures)
        saved = saved_model_pb2.SavedModel()
        saved.ParseFromString((path / "saved_model.pb").read_bytes())
        self.signature_defs = dict(saved.meta_graphs[0].signature_def)
        start, replayed = time.perf_counter(), 0
        for request in warmup_requests(path):
            try:
                self.run(request.model_spec.signature_name or "serving_default", request.inputs)
                replayed += 1
            except (TypeError, ValueError, tf.errors.InvalidArgumentError) as error:
                log.warning("%s version %d: a warm-up request failed: %s", name, version, error)
        if replayed:
            seconds = time.perf_counter() - start
            log.info("%s version %d: %d warm-up requests in %.2f s", name, version, replayed, seconds)

    def run(
        self, signature: str, inputs: Mapping[str, tensor_pb2.TensorProto]
    ) -> tuple[dict[str, np.ndarray], float]:
        """Run ``signature`` on a request's input tensors; returns its outputs and the compute seconds.
        Raises ValueError for a signature it does not have or inputs other than the signature's."""
        function = self.signatures.get(signature)
        if function is None:
            raise ValueError(f'Serving signature name: "{signature}" not found')
        arrays = {key: tf.constant(from_tensor_proto(proto)) for key, proto in inputs.items()}
        expected = set(self.signature_defs[signature].inputs)
        if set(arrays) != expected:
            raise ValueError(f"signature {signature} takes inputs {sorted(expected)}, got {sorted(arrays)}")
        start = time.perf_counter()
        outputs = {key: value.numpy() for key, value in function(**arrays).items()}
        return outputs, time.perf_counter() - start


class EmbeddedBackend(
    prediction_service_pb2_grpc.PredictionServiceServicer, model_service_pb2_grpc.ModelServiceServicer
):
    """PredictionService.Predict / GetModelMetadata and ModelService.GetModelStatus on loaded models."""

    def __init__(self, config_file: Path) -> None:
        self.models: dict[str, dict[int, LoadedModel]] = {}
        for served in served_models(config_file):
            versions = self.models.setdefault(served.name, {})
            for version in served.versions:
                log.info("loading %s version %d from %s", served.name, version, served.base_path)
                versions[version] = LoadedModel(served.name, version, served.base_path / str(version))

    def _find(self, model_spec, context: grpc.ServicerContext) -> LoadedModel:
        versions = self.models.get(model_spec.name)
        if not versions:
            context.abort(grpc.StatusCode.NOT_FOUND, f"Servable not found for request: {model_spec.name}")
        if model_spec.HasField("version"):
            version = model_spec.version.value
            if version not in versions:
                context.abort(
                    grpc.StatusCode.NOT_FOUND,
                    f"Servable not found for request: Specific({model_spec.name}, {version})",
                )
            return versions[version]
        return versions[max(versions)]

    def Predict(self, request: predict_pb2.PredictRequest, context: grpc.ServicerContext):  # noqa: N802
        model = self._find(request.model_spec, context)
        name = request.model_spec.signature_name or "serving_default"
        try:
            outputs, compute = model.run(name, request.inputs)
        except (ValueError, TypeError, tf.errors.InvalidArgumentError) as error:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error).splitlines()[0][:1000])
        response = predict_pb2.PredictResponse()
        response.model_spec.CopyFrom(request.model_spec)
        response.model_spec.version.value = model.version
        wanted = set(request.output_filter) or set(outputs)
        for key in wanted:
            if key not in outputs:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"output tensor alias not found: {key}")
            response.outputs[key].CopyFrom(to_tensor_proto(outputs[key]))
        # Not part of TF Serving's API: lets benchmarks split model compute from transport.
        context.set_trailing_metadata(((COMPUTE_METADATA_KEY, f"{compute:.6f}"),))
        return response

    def GetModelMetadata(self, request, context: grpc.ServicerContext):  # noqa: N802
        model = self._find(request.model_spec, context)
        if list(request.metadata_field) != ["signature_def"]:
            context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, "Metadata field signature_def is the only one supported"
            )
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        for key, value in model.signature_defs.items():
            signature_map.signature_def[key].CopyFrom(value)
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.name = model.name
        response.model_spec.version.value = model.version
        response.metadata["signature_def"].Pack(signature_map)
        return response

    def GetModelStatus(self, request, context: grpc.ServicerContext):  # noqa: N802
        versions = self.models.get(request.model_spec.name)
        if not versions:
            context.abort(
                grpc.StatusCode.NOT_FOUND, f"Could not find any versions of model {request.model_spec.name}"
            )
        wanted = (
            [request.model_spec.version.value] if request.model_spec.HasField("version") else sorted(versions)
        )
        response = get_model_status_pb2.GetModelStatusResponse()
        for version in wanted:
            if version not in versions:
                context.abort(grpc.StatusCode.NOT_FOUND, f"Could not find version {version} of model")
            status = response.model_version_status.add()
            status.version = version
            status.state = get_model_status_pb2.ModelVersionStatus.AVAILABLE
            status.status.CopyFrom(status_pb2.StatusProto())
        return response


def serve(config_file: Path, host: str, port: int, max_message_bytes: int, workers: int = 8) -> grpc.Server:
    """Load the models and start serving; returns the started server (port 0 picks a free one)."""
    backend = EmbeddedBackend(config_file)
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=workers), options=channel_options(max_message_bytes)
    )
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(backend, server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(backend, server)
    bound = server.add_insecure_port(f"{host}:{port}")
    server.bound_port = bound  # type: ignore[attr-defined]
    server.start()
    return server


def main(argv: list[str] | None = None) -> None:
    from service.settings import get_settings

    settings = get_settings()
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8500)
    parser.add_argument("--model-config-file", type=Path, default=settings.model_config_file)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    keep_big_blocks_out_of_the_heap()
    server = serve(args.model_config_file, args.host, args.port, settings.grpc_max_message_bytes)
    # Parents wait for this line to know the port is open.
    print(f"embedded backend listening on {args.host}:{server.bound_port}", flush=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    done.wait()
    server.stop(grace=5).wait()


if __name__ == "__main__":
    main()
