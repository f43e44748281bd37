"""Building blocks of the recurrent codec: convolutions and the convolutional GRU cell.

Plain ``tf.Module``s with explicit variables, so that export with fixed ``input_signature``s
gives a SavedModel of standard ops only (no Keras layer tracking in the graph).
"""

from __future__ import annotations

import math

import tensorflow as tf

__all__ = ["Conv2D", "ConvGRUCell", "GainEstimator", "dequantize_kernel", "quantize_kernel"]


class Conv2D(tf.Module):
    """A 2-D convolution with bias, SAME padding, and an optional stride.

    ``kernel_dtype`` int8 stores the kernel as int8 with a float16 scale per output channel
    (``kernel_scale``; shipped models from version 7, docs/decisions.md 36); otherwise the kernel is
    stored in ``weight_dtype``, like the bias.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel: int,
        stride: int = 1,
        weight_dtype: tf.DType = tf.float32,
        name: str | None = None,
        kernel_dtype: tf.DType | None = None,
    ) -> None:
        super().__init__(name=name)
        fan_in = in_channels * kernel * kernel
        limit = math.sqrt(6.0 / (fan_in + out_channels * kernel * kernel))
        initial = tf.random.uniform([kernel, kernel, in_channels, out_channels], -limit, limit)
        if kernel_dtype == tf.int8:
            quantized, scale = quantize_kernel(initial)
            self.kernel = tf.Variable(quantized, name="kernel")
            self.kernel_scale = tf.Variable(tf.cast(scale, tf.float16), name="kernel_scale")
        else:
            self.kernel = tf.Variable(tf.cast(initial, kernel_dtype or weight_dtype), name="kernel")
        self.bias = tf.Variable(tf.zeros([out_channels], weight_dtype), name="bias")
        self.stride = stride

    def __call__(self, x: tf.Tensor) -> tf.Tensor:
        y = tf.nn.conv2d(x, self._float_kernel(), strides=self.stride, padding="SAME")
        return tf.nn.bias_add(y, tf.cast(self.bias, tf.float32))

    def parts(self, x: tf.Tensor, count: int) -> list[tf.Tensor]:
        """The output channels in ``count`` equal parts, each its own convolution: what splitting the
        whole output gives, without writing it and copying it out again (12 % of the codec's CPU time
        went to those copies; docs/decisions.md 46)."""
        kernels = tf.split(self._float_kernel(), count, axis=-1)
        biases = tf.split(tf.cast(self.bias, tf.float32), count)
        return [
            tf.nn.bias_add(tf.nn.conv2d(x, kernel, strides=self.stride, padding="SAME"), bias)
            for kernel, bias in zip(kernels, biases, strict=True)
        ]

    def _float_kernel(self) -> tf.Tensor:
        # Weights may be stored in float16 or int8 (shipped models); compute is always float32.
        if self.kernel.dtype == tf.int8:
            return dequantize_kernel(self.kernel, self.kernel_scale)
        return tf.cast(self.kernel, tf.float32)


def quantize_kernel(kernel: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """A convolution kernel [..., out] as int8 and a float32 scale per output channel (symmetric:
    the largest magnitude of each channel maps to 127)."""
    kernel = tf.cast(kernel, tf.float32)
    largest = tf.reduce_max(tf.abs(tf.reshape(kernel, [-1, kernel.shape[-1]])), axis=0)
    # Rounded to float16 first: the stored scale is float16, and the int8 values are fitted to it. An
    # all-zero channel gets scale 1 (its values are 0 at any scale).
    scale = tf.where(largest > 0.0, largest / 127.0, 1.0)
    scale = tf.cast(tf.cast(scale, tf.float16), tf.float32)
    quantized = tf.clip_by_value(tf.round(kernel / scale), -127.0, 127.0)
    return tf.cast(quantized, tf.int8), scale


def dequantize_kernel(quantized: tf.Tensor, scale: tf.Tensor) -> tf.Tensor:
    """The float32 kernel that an int8 ``quantized`` kernel and its per-channel ``scale`` stand for."""
    return tf.cast(quantized, tf.float32) * tf.cast(scale, tf.float32)


class ConvGRUCell(tf.Module):
    """Convolutional GRU whose input convolution may be strided.

    ::

        x ──conv(k, stride)──▶ [xz, xr, xn]
        h ──conv(hk)───────▶ [hz, hr, hn]
        z = σ(xz + hz)   r = σ(xr + hr)
        n = tanh(xn + r ⊙ hn)
        h' = (1 − z) ⊙ h + z ⊙ n

    Each of the two convolutions holds the three gates' kernels (one variable each); it runs as three
    convolutions, one per gate (``Conv2D.parts``), or with ``fused_gates`` as one whose output is split,
    as versions up to 7 were exported (a re-export of one decodes its bitstreams exactly as before;
    docs/decisions.md 47). The state has ``units`` channels at the output resolution.
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
        kernel_dtype: tf.DType | None = None,
        fused_gates: bool = False,
    ) -> None:
        super().__init__(name=name)
        self.units = units
        self.stride = stride
        self.fused_gates = fused_gates
        self.input_conv = Conv2D(
            in_channels, 3 * units, kernel, stride, weight_dtype, name="input_conv", kernel_dtype=kernel_dtype
        )
        self.hidden_conv = Conv2D(
            units, 3 * units, hidden_kernel, 1, weight_dtype, name="hidden_conv", kernel_dtype=kernel_dtype
        )
        # A positive update-gate bias starts the cell close to "copy the new candidate", which
        # trains faster from scratch than the symmetric initialisation.
        gate_bias = tf.concat([tf.ones([units]), tf.zeros([2 * units])], 0)
        self.input_conv.bias.assign(tf.cast(gate_bias, weight_dtype))

    def __call__(self, x: tf.Tensor, h: tf.Tensor) -> tf.Tensor:
        if self.fused_gates:
            xz, xr, xn = tf.split(self.input_conv(x), 3, axis=-1)
            hz, hr, hn = tf.split(self.hidden_conv(h), 3, axis=-1)
        else:
            xz, xr, xn = self.input_conv.parts(x, 3)
            hz, hr, hn = self.hidden_conv.parts(h, 3)
        z = tf.sigmoid(xz + hz)
        r = tf.sigmoid(xr + hr)
        n = tf.tanh(xn + r * hn)
        return (1.0 - z) * h + z * n


class GainEstimator(tf.Module):
    """Log-gain offsets from the previous reconstruction: the content-dependent, spatially varying part
    of the scaled-additive gain (Toderici et al. 2017, section 3.3).

    ::

        P[t-1] ─conv s2─relu─conv s2─relu─conv s2─relu─conv s2─▶ K features per 16×16 cell
              ─▶ Σ_k mix[t, k]·f_k + offset[t] ─▶ 2·tanh(·/2) ─▶ bilinear ×16 ─▶ [B,H,W,1]

    The last convolution starts at zero, so a fresh estimator leaves the per-iteration gain as it was
    (a codec trained without it warm-starts unchanged); the output is bounded to a factor e^±2 and
    upsampled smoothly, so neighbouring cells never see a gain step at their border.
    """

    FEATURES = 4

    def __init__(self, iterations: int, weight_dtype: tf.DType = tf.float32, name: str | None = None) -> None:
        super().__init__(name=name)
        k = self.FEATURES
        self.convs = [
            Conv2D(3, 16, 3, 2, weight_dtype, name="conv1"),
            Conv2D(16, 32, 3, 2, weight_dtype, name="conv2"),
            Conv2D(32, 32, 3, 2, weight_dtype, name="conv3"),
            Conv2D(32, k, 3, 2, weight_dtype, name="conv4"),
        ]
        self.convs[-1].kernel.assign(tf.zeros_like(self.convs[-1].kernel))
        # Distinct per-feature mixing weights break the symmetry of the zero-initialised last layer.
        self.mix = tf.Variable(tf.random.uniform([iterations, k], 0.5, 1.5) / k, name="mix")
        self.offset = tf.Variable(tf.zeros([iterations]), name="offset")

    def __call__(self, reconstruction: tf.Tensor, index: tf.Tensor) -> tf.Tensor:
        """``reconstruction`` [B,H,W,3] in [-0.5, 0.5], ``index`` int32 [B] → log-gain offsets [B,H,W,1]."""
        x = reconstruction
        for conv in self.convs[:-1]:
            x = tf.nn.relu(conv(x))
        features = self.convs[-1](x)
        mix = tf.gather(self.mix, index)[:, None, None, :]
        offset = tf.gather(self.offset, index)[:, None, None, None]
        per_cell = tf.reduce_sum(features * mix, axis=-1, keepdims=True) + offset
        per_cell = 2.0 * tf.tanh(per_cell / 2.0)
        return tf.image.resize(per_cell, tf.shape(reconstruction)[1:3], method="bilinear")
