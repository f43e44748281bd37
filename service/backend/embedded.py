"""Embedded backend: a gRPC server that speaks TF Serving's PredictionService and ModelService.

It loads the SavedModels named by the same model config file TF Serving reads, each version in a
session of its own as TF Serving does, so the gateway talks to it exactly as it talks to
``tensorflow/serving``. For ``make run`` and the tests, on CPU: in bfloat16 where the CPU computes it
natively, as TF Serving's ``--mixed_precision=bfloat16`` (docs/decisions.md 30).

    python -m service.backend.embedded --port 8500 --model-config-file models/models.config
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import threading
import time
from collections.abc import Collection, Mapping
from concurrent import futures
from pathlib import Path

import grpc
import numpy as np
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2
from tensorflow.core.protobuf import config_pb2, rewriter_config_pb2
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
from service.logs import configure_logging
from service.memory import BACKEND_MMAP_THRESHOLD_BYTES, keep_big_blocks_out_of_the_heap

__all__ = [
    "MIXED_PRECISION",
    "EmbeddedBackend",
    "LoadedModel",
    "cpu_has_bfloat16",
    "keep_quality_terms_float32",
    "resolve_mixed_precision",
    "serve",
    "session_config",
]

log = logging.getLogger("rgic.backend")


#: ``mixed_precision`` values, as TF Serving's ``--mixed_precision`` flag takes them ("": float32).
MIXED_PRECISION = ("", "bfloat16")


#: Op types mixed precision must leave in float32, and the variable TF's rewrite reads them from.
_FLOAT32_OPS = "DepthwiseConv2dNative"
_FLOAT32_OPS_VARIABLE = "TF_AUTO_MIXED_PRECISION_GRAPH_REWRITE_ALLOWLIST_REMOVE"


def cpu_has_bfloat16() -> bool:
    """Whether this CPU computes bfloat16 natively (AMX or AVX512-BF16), where oneDNN runs it faster."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " amx_bf16" in flags or " avx512_bf16" in flags


def resolve_mixed_precision(setting: str) -> str:
    """``"auto"``: bfloat16 where the CPU computes it natively, else float32; other values as given."""
    if setting == "auto":
        return "bfloat16" if cpu_has_bfloat16() else ""
    return setting


def session_config(mixed_precision: str) -> config_pb2.ConfigProto:
    """The session options of a loaded version: with ``"bfloat16"``, oneDNN's automatic mixed precision
    rewrites the graph's convolutions and matrix products to bfloat16 (what TF Serving's
    ``--mixed_precision=bfloat16`` does), keeping float32 where precision matters."""
    if mixed_precision not in MIXED_PRECISION:
        raise ValueError(f"mixed_precision must be one of {MIXED_PRECISION}, not {mixed_precision!r}")
    rewrites = rewriter_config_pb2.RewriterConfig()
    if mixed_precision == "bfloat16":
        rewrites.auto_mixed_precision_onednn_bfloat16 = rewriter_config_pb2.RewriterConfig.ON
        keep_quality_terms_float32()
    return config_pb2.ConfigProto(graph_options=config_pb2.GraphOptions(rewrite_options=rewrites))


def keep_quality_terms_float32() -> None:
    """Keep the quality terms in float32 under oneDNN's bfloat16 rewrite. Their Gaussian windows (depthwise
    convolutions) give variances as differences of large sums (E[x²] − E[x]²): in bfloat16 they come out
    as noise, and early exit, rate control and the training loss would steer by it. The rewrite reads
    this list (an op type per entry) when it runs."""
    removed = os.environ.get(_FLOAT32_OPS_VARIABLE, "")
    if _FLOAT32_OPS not in removed.split(","):
        os.environ[_FLOAT32_OPS_VARIABLE] = ",".join(filter(None, [removed, _FLOAT32_OPS]))


class LoadedModel:
    """One loaded SavedModel version in a session of its own, as TF Serving loads it (so its session
    options, such as mixed precision, touch nothing else in the process): its SignatureDefs, warmed
    up with the version's ``tf_serving_warmup_requests`` as TF Serving does before serving it."""

    def __init__(self, name: str, version: int, path: Path, mixed_precision: str = "") -> None:
        self.name, self.version = name, version
        graph = tf.Graph()
        self.session = tf.compat.v1.Session(graph=graph, config=session_config(mixed_precision))
        with graph.as_default():
            meta_graph = tf.compat.v1.saved_model.load(self.session, ["serve"], str(path))
        self.signature_defs = {
            key: value for key, value in meta_graph.signature_def.items() if not key.startswith("__")
        }
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
        self,
        signature: str,
        inputs: Mapping[str, tensor_pb2.TensorProto],
        outputs: Collection[str] = (),
    ) -> tuple[dict[str, np.ndarray], float]:
        """Run ``signature`` on a request's input tensors, computing only ``outputs`` (default: all);
        returns them and the compute seconds. Raises ValueError for a signature it does not have, inputs
        other than the signature's or of another dtype, and outputs it does not have."""
        definition = self.signature_defs.get(signature)
        if definition is None:
            raise ValueError(f'Serving signature name: "{signature}" not found')
        if set(inputs) != set(definition.inputs):
            raise ValueError(
                f"signature {signature} takes inputs {sorted(definition.inputs)}, got {sorted(inputs)}"
            )
        feeds = {}
        for key, proto in inputs.items():
            wanted = definition.inputs[key]
            if proto.dtype != wanted.dtype:
                raise ValueError(
                    f"input {key} must be {tf.dtypes.as_dtype(wanted.dtype).name}, "
                    f"got {tf.dtypes.as_dtype(proto.dtype).name}"
                )
            feeds[wanted.name] = from_tensor_proto(proto)
        missing = set(outputs) - set(definition.outputs)
        if missing:
            raise ValueError(f"output tensor alias not found: {sorted(missing)[0]}")
        fetches = {key: definition.outputs[key].name for key in outputs or definition.outputs}
        start = time.perf_counter()
        results = self.session.run(fetches, feeds)
        return results, time.perf_counter() - start


class EmbeddedBackend(
    prediction_service_pb2_grpc.PredictionServiceServicer, model_service_pb2_grpc.ModelServiceServicer
):
    """PredictionService.Predict / GetModelMetadata and ModelService.GetModelStatus on loaded models."""

    def __init__(self, config_file: Path, mixed_precision: str = "auto") -> None:
        self.models: dict[str, dict[int, LoadedModel]] = {}
        precision = resolve_mixed_precision(mixed_precision)
        for served in served_models(config_file):
            versions = self.models.setdefault(served.name, {})
            for version in served.versions:
                log.info(
                    "loading %s version %d from %s (%s)",
                    served.name,
                    version,
                    served.base_path,
                    precision or "float32",
                )
                path = served.base_path / str(version)
                versions[version] = LoadedModel(served.name, version, path, precision)

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
            outputs, compute = model.run(name, request.inputs, request.output_filter)
        except (ValueError, TypeError, tf.errors.InvalidArgumentError) as error:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error).splitlines()[0][:1000])
        response = predict_pb2.PredictResponse()
        response.model_spec.CopyFrom(request.model_spec)
        response.model_spec.version.value = model.version
        for key, value in outputs.items():
            response.outputs[key].CopyFrom(to_tensor_proto(value))
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


def serve(
    config_file: Path,
    host: str,
    port: int,
    max_message_bytes: int,
    workers: int = 8,
    mixed_precision: str = "auto",
) -> grpc.Server:
    """Load the models and start serving; returns the started server (port 0 picks a free one).
    ``mixed_precision``: ``"bfloat16"``, ``""`` (float32) or ``"auto"`` (:func:`resolve_mixed_precision`)."""
    backend = EmbeddedBackend(config_file, mixed_precision)
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
    parser.add_argument(
        "--mixed-precision",
        choices=("auto", *MIXED_PRECISION),
        default=settings.embedded_mixed_precision,
        help='"bfloat16", "" (float32) or "auto" (bfloat16 where the CPU has it)',
    )
    args = parser.parse_args(argv)
    configure_logging(settings.log_format, settings.log_level)
    keep_big_blocks_out_of_the_heap(BACKEND_MMAP_THRESHOLD_BYTES)
    server = serve(
        args.model_config_file,
        args.host,
        args.port,
        settings.grpc_max_message_bytes,
        mixed_precision=args.mixed_precision,
    )
    # Parents wait for this line to know the port is open.
    print(f"embedded backend listening on {args.host}:{server.bound_port}", flush=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    done.wait()
    server.stop(grace=5).wait()


if __name__ == "__main__":
    main()
