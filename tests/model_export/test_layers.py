import numpy as np
import tensorflow as tf

from model_export.layers import Conv2D, dequantize_kernel, quantize_kernel


def test_quantized_kernels_keep_every_weight_within_half_a_step_of_its_channel() -> None:
    kernel = tf.random.normal([3, 3, 8, 5], seed=1) * tf.constant([0.01, 0.1, 1.0, 3.0, 0.0])
    quantized, scale = quantize_kernel(kernel)
    assert quantized.dtype == tf.int8 and scale.shape == [5]
    levels = np.abs(quantized.numpy()).reshape(-1, 5).max(0)
    assert list(levels[:4]) == [127] * 4 and levels[4] == 0  # each channel uses the full range
    error = np.abs(dequantize_kernel(quantized, scale).numpy() - kernel.numpy()).reshape(-1, 5).max(0)
    assert np.all(error <= scale.numpy() / 2 * 1.001 + 1e-12)
    assert np.all(np.isfinite(scale.numpy())) and np.all(scale.numpy() > 0)


def test_an_int8_convolution_computes_with_its_dequantized_kernel() -> None:
    tf.random.set_seed(2)
    conv = Conv2D(4, 6, 3, 2, tf.float16, kernel_dtype=tf.int8)
    assert conv.kernel.dtype == tf.int8 and conv.kernel_scale.dtype == tf.float16
    x = tf.random.uniform([1, 8, 8, 4])
    kernel = dequantize_kernel(conv.kernel, conv.kernel_scale)
    expected = tf.nn.conv2d(x, kernel, 2, "SAME") + tf.cast(conv.bias, tf.float32)
    np.testing.assert_array_equal(conv(x).numpy(), expected.numpy())


def test_a_convolution_in_parts_gives_its_output_channels_in_order() -> None:
    tf.random.set_seed(3)
    conv = Conv2D(4, 9, 3, 2, tf.float16, kernel_dtype=tf.int8)
    conv.bias.assign(tf.cast(tf.range(9, dtype=tf.float32) / 10, tf.float16))
    x = tf.random.uniform([2, 8, 10, 4])
    parts = conv.parts(x, 3)
    assert [p.shape for p in parts] == [[2, 4, 5, 3]] * 3
    np.testing.assert_allclose(tf.concat(parts, -1).numpy(), conv(x).numpy(), rtol=1e-5, atol=1e-6)
