"""TF Serving's BatchingParameters and MonitoringConfig messages, which tensorflow-serving-api does not ship.

Built field for field from tensorflow_serving/servables/tensorflow/session_bundle_config.proto
and tensorflow_serving/config/monitoring_config.proto, so the shipped files parse as TF Serving
parses them.
"""

from __future__ import annotations

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, wrappers_pb2

_F = descriptor_pb2.FieldDescriptorProto


def _build() -> descriptor_pool.DescriptorPool:
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(wrappers_pb2.DESCRIPTOR.serialized_pb)
    file = descriptor_pb2.FileDescriptorProto(
        name="rgic_tfserving_configs.proto",
        package="tensorflow.serving",
        syntax="proto3",
        dependency=["google/protobuf/wrappers.proto"],
    )
    batching = file.message_type.add(name="BatchingParameters")
    for number, name, type_name in [
        (1, "max_batch_size", ".google.protobuf.Int64Value"),
        (2, "batch_timeout_micros", ".google.protobuf.Int64Value"),
        (3, "max_enqueued_batches", ".google.protobuf.Int64Value"),
        (4, "num_batch_threads", ".google.protobuf.Int64Value"),
        (5, "thread_pool_name", ".google.protobuf.StringValue"),
    ]:
        batching.field.add(
            name=name, number=number, type=_F.TYPE_MESSAGE, type_name=type_name, label=_F.LABEL_OPTIONAL
        )
    batching.field.add(name="allowed_batch_sizes", number=6, type=_F.TYPE_INT64, label=_F.LABEL_REPEATED)
    batching.field.add(
        name="pad_variable_length_inputs", number=7, type=_F.TYPE_BOOL, label=_F.LABEL_OPTIONAL
    )
    prometheus = file.message_type.add(name="PrometheusConfig")
    prometheus.field.add(name="enable", number=1, type=_F.TYPE_BOOL, label=_F.LABEL_OPTIONAL)
    prometheus.field.add(name="path", number=2, type=_F.TYPE_STRING, label=_F.LABEL_OPTIONAL)
    monitoring = file.message_type.add(name="MonitoringConfig")
    monitoring.field.add(
        name="prometheus_config",
        number=1,
        type=_F.TYPE_MESSAGE,
        type_name=".tensorflow.serving.PrometheusConfig",
        label=_F.LABEL_OPTIONAL,
    )
    pool.Add(file)
    return pool


_POOL = _build()
BatchingParameters = message_factory.GetMessageClass(
    _POOL.FindMessageTypeByName("tensorflow.serving.BatchingParameters")
)
MonitoringConfig = message_factory.GetMessageClass(
    _POOL.FindMessageTypeByName("tensorflow.serving.MonitoringConfig")
)

#: Metric names TF Serving exports to Prometheus ('/' → ':'), from its servables/tensorflow/util.cc.
TFSERVING_METRICS = {
    ":tensorflow:serving:request_count",
    ":tensorflow:serving:request_latency",
    ":tensorflow:serving:runtime_latency",
    ":tensorflow:serving:request_example_counts",
    ":tensorflow:serving:request_example_count_total",
}
