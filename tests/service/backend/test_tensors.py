import numpy as np
import pytest
import tensorflow as tf

from service.backend.tensors import from_tensor_proto, to_tensor_proto


@pytest.mark.parametrize("dtype", [np.float32, np.int32, np.int8, np.uint8, np.int64])
def test_round_trip_and_agreement_with_tensorflow(dtype: type) -> None:
    array = (np.arange(24).reshape(2, 3, 4) - 5).astype(dtype)
    proto = to_tensor_proto(array)
    np.testing.assert_array_equal(from_tensor_proto(proto), array)
    np.testing.assert_array_equal(tf.make_ndarray(proto), array)


@pytest.mark.parametrize("dtype", [np.float32, np.int32, np.int8, np.uint8])
def test_reads_tensorflows_field_encoding(dtype: type) -> None:
    array = np.array([[1, 2], [3, 4]], dtype=dtype)
    proto = tf.make_tensor_proto(array)
    proto.ClearField("tensor_content")
    getattr(proto, "float_val" if dtype == np.float32 else "int_val").extend(array.reshape(-1).tolist())
    np.testing.assert_array_equal(from_tensor_proto(proto), array)


def test_unsupported_dtype_is_refused() -> None:
    with pytest.raises(TypeError):
        to_tensor_proto(np.zeros(2, np.complex64))
