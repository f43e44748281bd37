"""Building blocks of the recurrent codec: convolutions and the convolutional GRU cell.

Plain ``tf.Module``s with explicit variables, so that export with fixed ``input_signature``s
gives a SavedModel of standard ops only (no Keras layer tracking in the graph).
"""

from __future__ import annotations

import math

import tensorflow as tf

__all__ = ["Conv2D", "ConvGRUCell"]


class Conv2D(tf.Module):
    """A 2-D convolution with bias, SAME padding, and an optional stride."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel: int,
        stride: int = 1,
        weight_dtype: tf.DType = tf.float32,
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        fan_in = in_channels * kernel * kernel
        limit = math.sqrt(6.0 / (fan_in + out_channels * kernel * kernel))
        initial = tf.random.uniform([kernel, kernel, in_channels, out_channels], -limit, limit)
        self.kernel = tf.Variable(tf.cast(initial, weight_dtype), name="kernel")
        self.bias = tf.Variable(tf.zeros([out_channels], weight_dtype), name="bias")
        self.stride = stride

    def __call__(self, x: tf.Tensor) -> tf.Tensor:
        # Weights may be stored in float16 (shipped models); compute is always float32.
        kernel = tf.cast(self.kernel, tf.float32)
        y = tf.nn.conv2d(x, kernel, strides=self.stride, padding="SAME")
        return tf.nn.bias_add(y, tf.cast(self.bias, tf.float32))


class ConvGRUCell(tf.Module):
    """Convolutional GRU whose input convolution may be strided.

    ::

        x ──conv(k, stride)──▶ [xz, xr, xn]
        h ──conv(hk)───────▶ [hz, hr, hn]
        z = σ(xz + hz)   r = σ(xr + hr)
        n = tanh(xn + r ⊙ hn)
        h' = (1 − z) ⊙ h + z ⊙ n

    The three gates share one convolution each for input and state (one big conv is faster
    on CPU than three small ones). The state has ``units`` channels at the output resolution.
    """

    def __init__(
        self,
        in_channels: int,
        units: int,
        kernel: int = 3,
        stride: int = 1,
        hidden_kernel: int = 1,
        weight_dtype: tf.DType = tf.float32,
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        self.units = units
        self.stride = stride
        self.input_conv = Conv2D(in_channels, 3 * units, kernel, stride, weight_dtype, name="input_conv")
        self.hidden_conv = Conv2D(units, 3 * units, hidden_kernel, 1, weight_dtype, name="hidden_conv")
        # A positive update-gate bias starts the cell close to "copy the new candidate", which
        # trains faster from scratch than the symmetric initialisation.
        gate_bias = tf.concat([tf.ones([units]), tf.zeros([2 * units])], 0)
        self.input_conv.bias.assign(tf.cast(gate_bias, weight_dtype))

    def __call__(self, x: tf.Tensor, h: tf.Tensor) -> tf.Tensor:
        xz, xr, xn = tf.split(self.input_conv(x), 3, axis=-1)
        hz, hr, hn = tf.split(self.hidden_conv(h), 3, axis=-1)
        z = tf.sigmoid(xz + hz)
        r = tf.sigmoid(xr + hr)
        n = tf.tanh(xn + r * hn)
        return (1.0 - z) * h + z * n
