"""numpy ⇄ TensorProto through raw ``tensor_content`` bytes (much faster than per-element fields), and
PredictRequests built from arrays (the gateway's calls and the exported warm-up requests alike)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
from tensorflow_serving.apis import predict_pb2

__all__ = ["from_tensor_proto", "predict_request", "to_tensor_proto"]

_DTYPES: dict[np.dtype, int] = {
    np.dtype(np.float32): types_pb2.DT_FLOAT,
    np.dtype(np.int32): types_pb2.DT_INT32,
    np.dtype(np.int8): types_pb2.DT_INT8,
    np.dtype(np.uint8): types_pb2.DT_UINT8,
    np.dtype(np.int64): types_pb2.DT_INT64,
}
_NUMPY = {v: k for k, v in _DTYPES.items()}
# Field that TF fills when a tensor is not sent as tensor_content, per dtype.
_FIELDS = {
    types_pb2.DT_FLOAT: "float_val",
    types_pb2.DT_INT32: "int_val",
    types_pb2.DT_INT8: "int_val",
    types_pb2.DT_UINT8: "int_val",
    types_pb2.DT_INT64: "int64_val",
}


def to_tensor_proto(array: np.ndarray) -> tensor_pb2.TensorProto:
    """Little-endian C-order bytes of ``array`` as a TensorProto."""
    array = np.ascontiguousarray(array)
    if array.dtype not in _DTYPES:
        raise TypeError(f"unsupported dtype {array.dtype}")
    shape = tensor_shape_pb2.TensorShapeProto(
        dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in array.shape]
    )
    return tensor_pb2.TensorProto(
        dtype=_DTYPES[array.dtype],
        tensor_shape=shape,
        tensor_content=array.astype(array.dtype.newbyteorder("<")).tobytes(),
    )


def from_tensor_proto(proto: tensor_pb2.TensorProto) -> np.ndarray:
    """A TensorProto as a numpy array, from ``tensor_content`` or from the typed value field."""
    if proto.dtype not in _NUMPY:
        raise TypeError(f"unsupported tensor dtype {proto.dtype}")
    dtype = _NUMPY[proto.dtype]
    shape = tuple(d.size for d in proto.tensor_shape.dim)
    if proto.tensor_content:
        return np.frombuffer(proto.tensor_content, dtype=dtype.newbyteorder("<")).astype(dtype).reshape(shape)
    values = np.asarray(getattr(proto, _FIELDS[proto.dtype]), dtype=dtype)
    count = int(np.prod(shape))
    if values.size == count:
        return values.reshape(shape)
    if values.size == 1:  # TF writes a tensor of identical values as a single value
        return np.full(shape, values[0], dtype=dtype)
    raise ValueError(f"tensor has {values.size} values for shape {shape}")


def predict_request(
    model_name: str,
    signature: str,
    inputs: Mapping[str, np.ndarray],
    version: int | None = None,
    output_filter: Iterable[str] = (),
) -> predict_pb2.PredictRequest:
    """A PredictRequest for ``signature`` of ``model_name`` (``version`` pinned if given) on ``inputs``."""
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    if version is not None:
        request.model_spec.version.value = version
    request.model_spec.signature_name = signature
    for name, array in inputs.items():
        request.inputs[name].CopyFrom(to_tensor_proto(array))
    request.output_filter.extend(output_filter)
    return request
