"""The recurrent image codec of Toderici et al. 2017 with additive reconstruction.

::

    iteration t (r[0] = x, P[0] = 0):

      r[t-1] ─×g[t]─▶ Encoder (conv s2 → GRU s2 → GRU s2 → GRU s2) ─▶ 1×1 conv, tanh ─▶ Binarizer ─▶ B[t]
                                                                                                  │
      P[t] = P[t-1] + D(B[t]) / g[t]  ◀── conv ◀── d2s ◀── GRU ◀── d2s ◀── GRU ◀── ... ◀── 1×1 conv ◀┘
      r[t] = x − P[t]

Each iteration emits ``BITS_PER_CELL`` bits per 16×16 cell (0.125 bpp at 32 bits). The per-iteration
gain ``g[t]`` keeps the shrinking residual in the encoder's useful range. The three verbs follow
CompressAI: ``forward`` (training), ``compress`` and ``decompress`` (fused, exported), plus the
single-iteration ``encode_step`` and ``decode_step`` with explicit recurrent state for streaming.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable

import tensorflow as tf

from model_export import ssimulacra2
from model_export.layers import Conv2D, ConvGRUCell, GainEstimator, dequantize_kernel, quantize_kernel
from model_export.quality_terms import (
    POWER_FACTORS,
    cell_squared_errors,
    msssim_cell_terms,
    msssim_per_image,
    whole_image_quality,
)

__all__ = ["CELL_SIZE", "EARLY_ITERATIONS", "CodecConfig", "RecurrentCodec", "variables_by_path"]

#: Side, in pixels, of the square cell that one latent position covers (four stride-2 stages).
CELL_SIZE = 16
#: Iterations the training loss can weigh more (``forward``'s ``early_weight``): version 4's unroll,
#: which covers the service's targets up to MS-SSIM 0.97.
EARLY_ITERATIONS = 10


@dataclasses.dataclass(frozen=True)
class CodecConfig:
    """Channel widths and iteration budget of the codec."""

    encoder_channels: tuple[int, int, int, int] = (32, 96, 192, 192)
    decoder_channels: tuple[int, int, int, int] = (192, 192, 96, 48)
    bits_per_cell: int = 32
    max_iterations: int = 16
    #: A cell whose bits are all zero (stopped by rate control) keeps its pixels (from version 3 on);
    #: otherwise the decoder's zero-bit output still moves it, and per-patch stops decode less
    #: predictably.
    freeze_stopped_cells: bool = False
    #: Scaled-additive reconstruction (Toderici et al. 2017, section 3.3; from version 5 on): the
    #: per-iteration gain is multiplied by a smooth, spatially varying factor that a small network
    #: estimates from the previous reconstruction, so encoder and decoder compute it alike unsignalled.
    adaptive_gain: bool = False
    #: Hidden-state priming (Johnston et al. 2018): before the first iteration's output, the encoder's
    #: GRUs make this many extra passes over the image and the decoder's over the first bits. The
    #: passes carry no bits; they give the first codes and the first image a wider spatial context.
    priming: int = 0

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> CodecConfig:
        raw = json.loads(text)
        return cls(
            encoder_channels=tuple(raw["encoder_channels"]),
            decoder_channels=tuple(raw["decoder_channels"]),
            bits_per_cell=int(raw["bits_per_cell"]),
            max_iterations=int(raw["max_iterations"]),
            freeze_stopped_cells=bool(raw.get("freeze_stopped_cells", False)),
            adaptive_gain=bool(raw.get("adaptive_gain", False)),
            priming=int(raw.get("priming", 0)),
        )

    @property
    def encoder_state_shapes(self) -> list[tuple[int, int]]:
        """(downscale factor, channels) of each encoder GRU state."""
        e = self.encoder_channels
        return [(4, e[1]), (8, e[2]), (16, e[3])]

    @property
    def decoder_state_shapes(self) -> list[tuple[int, int]]:
        """(downscale factor, channels) of each decoder GRU state."""
        d = self.decoder_channels
        return [(16, d[0]), (8, d[1]), (4, d[2]), (2, d[3])]


class RecurrentCodec(tf.Module):
    """Encoder, binarizer and decoder of the residual-GRU codec (additive reconstruction)."""

    def __init__(
        self,
        config: CodecConfig = CodecConfig(),
        weight_dtype: tf.DType = tf.float32,
        name: str = "recurrent_codec",
        gru_kernel_dtype: tf.DType | None = None,
        decoder_gru_kernel_dtype: tf.DType | None = None,
        fused_gates: bool = False,
    ) -> None:
        """``weight_dtype`` stores every weight (float16 in shipped models); ``gru_kernel_dtype`` int8
        stores the GRU cells' kernels, 93 % of the weights, as int8 with a scale per channel instead;
        ``decoder_gru_kernel_dtype``, if given, the decoder's cells' kernels otherwise. ``fused_gates``
        runs each GRU convolution whole and splits its output (:class:`ConvGRUCell`)."""
        super().__init__(name=name)
        self.config = config
        e, d, bits = config.encoder_channels, config.decoder_channels, config.bits_per_cell
        w = weight_dtype

        def gru(
            in_channels: int, units: int, kernel: int, stride: int, name: str, kernel_dtype: tf.DType | None
        ) -> ConvGRUCell:
            return ConvGRUCell(
                in_channels,
                units,
                kernel,
                stride,
                weight_dtype=w,
                name=name,
                kernel_dtype=kernel_dtype,
                fused_gates=fused_gates,
            )

        enc_kernels = gru_kernel_dtype
        dec_kernels = decoder_gru_kernel_dtype or gru_kernel_dtype
        self.enc_conv = Conv2D(3, e[0], 3, 2, w, name="enc_conv")
        self.enc_gru1 = gru(e[0], e[1], 3, 2, "enc_gru1", enc_kernels)
        self.enc_gru2 = gru(e[1], e[2], 3, 2, "enc_gru2", enc_kernels)
        self.enc_gru3 = gru(e[2], e[3], 3, 2, "enc_gru3", enc_kernels)
        self.binarizer = Conv2D(e[3], bits, 1, 1, w, name="binarizer")
        self.dec_conv = Conv2D(bits, d[0], 1, 1, w, name="dec_conv")
        self.dec_gru1 = gru(d[0], d[0], 2, 1, "dec_gru1", dec_kernels)
        self.dec_gru2 = gru(d[0] // 4, d[1], 3, 1, "dec_gru2", dec_kernels)
        self.dec_gru3 = gru(d[1] // 4, d[2], 3, 1, "dec_gru3", dec_kernels)
        self.dec_gru4 = gru(d[2] // 4, d[3], 3, 1, "dec_gru4", dec_kernels)
        self.dec_out = Conv2D(d[3] // 4, 3, 1, 1, w, name="dec_out")
        # log of the residual gain per iteration; grows with t because residuals shrink.
        # Kept in float32 even in shipped models: it is tiny and sets every iteration's scale.
        self.log_gain = tf.Variable(
            [math.log(1.0 + 0.75 * t) for t in range(config.max_iterations)], name="log_gain"
        )
        if config.adaptive_gain:
            self.gain_estimator = GainEstimator(config.max_iterations, w, name="gain_estimator")

    def copy_weights_from(self, other: RecurrentCodec, trained_iterations: int | None = None) -> None:
        """Assign ``other``'s weights to this codec, cast (or quantized) to this codec's storage.

        The two configurations may differ in what a warm start keeps: ``other``'s weights go to the
        layers of the same name; layers ``other`` lacks (a new gain estimator) keep their initial
        values. With ``trained_iterations``, the gains of later iterations, which ``other`` never
        trained, continue the trend of its trained ones instead.
        """
        theirs_by_path = dict(variables_by_path(other))
        mine_by_path = dict(variables_by_path(self))
        for path, mine in mine_by_path.items():
            theirs = theirs_by_path.get(path)
            if theirs is None or path.endswith("/kernel_scale"):  # scales go with their kernels
                continue
            value = theirs
            if theirs.dtype == tf.int8:
                value = dequantize_kernel(theirs, theirs_by_path[f"{path}_scale"])
            if path == "log_gain" and (trained_iterations or value.shape[0] != mine.shape[0]):
                value = _extend_table(value[: trained_iterations or value.shape[0]], mine.shape[0])
            if mine.dtype == tf.int8:
                value, scale = quantize_kernel(value)
                mine_by_path[f"{path}_scale"].assign(tf.cast(scale, tf.float16))
            mine.assign(tf.cast(value, mine.dtype))

    # ----------------------------------------------------------------------------------------
    # single iterations

    def initial_states(self, batch: int, height: int, width: int) -> tuple[list[tf.Tensor], list[tf.Tensor]]:
        """Zero encoder and decoder states for images of ``height`` × ``width`` (multiples of 16)."""
        enc = [tf.zeros([batch, height // f, width // f, c]) for f, c in self.config.encoder_state_shapes]
        dec = [tf.zeros([batch, height // f, width // f, c]) for f, c in self.config.decoder_state_shapes]
        return enc, dec

    def gain(self, iteration: tf.Tensor, reconstruction: tf.Tensor) -> tf.Tensor:
        """Residual gain, [B,1,1,1] (one per iteration) or [B,H,W,1] with ``adaptive_gain`` (also a
        function of the previous ``reconstruction`` [B,H,W,3]); ``iteration`` is int32 [B]."""
        index = tf.minimum(iteration, self.config.max_iterations - 1)
        log_gain = tf.gather(self.log_gain, index)[:, None, None, None]
        if self.config.adaptive_gain:
            log_gain = log_gain + self.gain_estimator(reconstruction, index)
        return tf.exp(log_gain)

    def encode_codes(
        self, residual: tf.Tensor, iteration: tf.Tensor | int, states: list[tf.Tensor], gain: tf.Tensor
    ) -> tuple[tf.Tensor, list[tf.Tensor]]:
        """One encoder iteration: residual [B,H,W,3] scaled by ``gain`` (from :meth:`gain`) → real-valued
        codes in (-1, 1), new states (primed first when ``iteration``, int32 [B] or a Python int, is the
        first)."""
        x = self.enc_conv(residual * gain)
        states = self._primed(lambda s: self._encoder_states(x, s), states, iteration)
        states = self._encoder_states(x, states)
        return tf.tanh(self.binarizer(states[-1])), states

    def _encoder_states(self, x: tf.Tensor, states: list[tf.Tensor]) -> list[tf.Tensor]:
        h1 = self.enc_gru1(x, states[0])
        h2 = self.enc_gru2(h1, states[1])
        h3 = self.enc_gru3(h2, states[2])
        return [h1, h2, h3]

    def _primed(
        self,
        step: Callable[[list[tf.Tensor]], list[tf.Tensor]],
        states: list[tf.Tensor],
        iteration: tf.Tensor | int,
    ) -> list[tf.Tensor]:
        """``states`` after the config's priming passes of ``step`` when ``iteration`` (int32 [B] or a
        Python int) is the first, else as they are."""
        if not self.config.priming:
            return states

        def prime() -> list[tf.Tensor]:
            primed = states
            for _ in range(self.config.priming):
                primed = step(primed)
            return primed

        if isinstance(iteration, int):
            return prime() if iteration == 0 else states
        return tf.cond(tf.reduce_all(tf.equal(iteration, 0)), prime, lambda: list(states))

    def decode_delta(
        self, bits: tf.Tensor, gain: tf.Tensor, states: list[tf.Tensor], iteration: tf.Tensor | int
    ) -> tuple[tf.Tensor, list[tf.Tensor]]:
        """One decoder iteration: bits [B,h,w,C] in {-1, 0, +1} → image increment [B,H,W,3], new states
        (primed first when ``iteration`` is the first)."""
        x = self.dec_conv(bits)
        states = self._primed(lambda s: self._decoder_states(x, s), states, iteration)
        states = self._decoder_states(x, states)
        delta = tf.tanh(self.dec_out(tf.nn.depth_to_space(states[-1], 2))) / gain
        return delta, states

    def _decoder_states(self, x: tf.Tensor, states: list[tf.Tensor]) -> list[tf.Tensor]:
        g1 = self.dec_gru1(x, states[0])
        g2 = self.dec_gru2(tf.nn.depth_to_space(g1, 2), states[1])
        g3 = self.dec_gru3(tf.nn.depth_to_space(g2, 2), states[2])
        g4 = self.dec_gru4(tf.nn.depth_to_space(g3, 2), states[3])
        return [g1, g2, g3, g4]

    def decode(
        self,
        bits: tf.Tensor,
        iteration: tf.Tensor | int,
        states: list[tf.Tensor],
        reconstruction: tf.Tensor,
        gain: tf.Tensor | None = None,
    ) -> tuple[tf.Tensor, list[tf.Tensor]]:
        """One decoder iteration applied to ``reconstruction`` [B,H,W,3]; returns it and the states.
        ``gain`` is :meth:`gain` of (``iteration``, ``reconstruction``), computed here unless given."""
        if gain is None:
            gain = self.gain(iteration, reconstruction)
        delta, states = self.decode_delta(bits, gain, states, iteration)
        if self.config.freeze_stopped_cells:
            active = tf.cast(tf.reduce_any(tf.not_equal(bits, 0.0), axis=-1, keepdims=True), delta.dtype)
            delta = delta * tf.repeat(tf.repeat(active, CELL_SIZE, axis=1), CELL_SIZE, axis=2)
        return reconstruction + delta, states

    @staticmethod
    def binarize(codes: tf.Tensor, training: bool) -> tf.Tensor:
        """{-1, +1} bits; stochastic with a straight-through gradient while training."""
        if training:
            noise = tf.random.uniform(tf.shape(codes))
            sample = tf.where(noise < (1.0 + codes) / 2.0, 1.0, -1.0)
            return codes + tf.stop_gradient(sample - codes)
        return tf.where(codes >= 0.0, 1.0, -1.0)

    # ----------------------------------------------------------------------------------------
    # training

    def forward(
        self,
        images: tf.Tensor,
        iterations: int,
        stop_at: tf.Tensor | None = None,
        training: bool = True,
        log_loss: bool = True,
        early_weight: float = 1.0,
        msssim_weight: float = 0.0,
        colour_weight: float = 0.0,
        msssim_covers_border: bool = False,
        edge_weight: float = 0.0,
        ssimulacra2_weight: float = 0.0,
    ) -> tuple[tf.Tensor, list[tf.Tensor]]:
        """Unrolled training pass.

        ``images`` float32 [B,H,W,3] in [-0.5, 0.5]; ``stop_at`` optional int32 [B,h,w] per-cell
        iteration count after which that cell's bits are zeroed (as rate control does).
        Returns the loss and the reconstruction after each iteration. The loss is the weighted mean
        over iterations of log L1(residual) (``log_loss``, default) or of L1: the log weighs every
        iteration's relative improvement alike, where plain L1 is dominated by the large early
        residuals and leaves late iterations (high rates) undertrained. The first
        ``EARLY_ITERATIONS`` weigh ``early_weight`` each and the rest 1, so that a long unroll does
        not dilute the low rates the service serves most.

        With ``msssim_weight`` w > 0 (and ``log_loss``), each iteration's term is
        (1 − w)·log L1 + w·log(1 − MS-SSIM): the log of MS-SSIM's distance from 1, the quantity every
        MS-SSIM target of the service sets (``images`` need a static size; 88-pixel crops hold four of
        its five scales). With ``msssim_covers_border`` its windows are centred on every pixel, the
        crop's border mirrored (:func:`msssim_per_image`).

        With ``colour_weight`` c > 0, the term adds c·log L1 of the chroma averaged over 8×8 blocks
        (:func:`local_chroma`): MS-SSIM hardly sees a patch's colour drift, which CIEDE2000 measured as
        most of the network's colour error against WebP's (docs/decisions.md 35).

        With ``edge_weight`` e > 0, the term adds e·log of the mean |luma gradient error| weighted by
        the original's gradient magnitude (:func:`edge_gradient_error`): edges drawn blurred or
        stepped, which MS-SSIM forgives and viewers do not (docs/decisions.md 55).

        With ``ssimulacra2_weight`` p > 0, the term adds p·log of SSIMULACRA 2's distance from 100 (the
        batch mean of 100 − score, :mod:`model_export.ssimulacra2`): XYB colour, SSIM at six scales and
        its ringing and blurring maps, the measure the service's default target sets.
        """
        shape = tf.shape(images)
        batch, height, width = shape[0], shape[1], shape[2]
        enc, dec = self.initial_states(batch, height, width)
        reconstruction = tf.zeros_like(images)
        losses, reconstructions = [], []
        for t in range(iterations):
            it = _iteration_index(images, t)
            gain = self.gain(it, reconstruction)
            codes, enc = self.encode_codes(images - reconstruction, t, enc, gain)
            bits = self.binarize(codes, training)
            if stop_at is not None:
                bits = bits * tf.cast(stop_at > t, tf.float32)[..., None]
            reconstruction, dec = self.decode(bits, t, dec, reconstruction, gain)
            error = tf.reduce_mean(tf.abs(images - reconstruction))
            term = tf.math.log(error + 1e-6) if log_loss else error
            if msssim_weight > 0.0:
                pixels = tf.clip_by_value((images + 0.5) * 255.0, 0.0, 255.0)
                decoded = tf.clip_by_value((reconstruction + 0.5) * 255.0, 0.0, 255.0)
                distance = tf.reduce_mean(1.0 - msssim_per_image(pixels, decoded, msssim_covers_border))
                term = (1.0 - msssim_weight) * term + msssim_weight * tf.math.log(distance + 1e-6)
            if colour_weight > 0.0:
                drift = tf.reduce_mean(tf.abs(local_chroma(images) - local_chroma(reconstruction)))
                term = term + colour_weight * tf.math.log(drift + 1e-6)
            if edge_weight > 0.0:
                term = term + edge_weight * tf.math.log(edge_gradient_error(images, reconstruction) + 1e-6)
            if ssimulacra2_weight > 0.0:
                pixels = tf.clip_by_value((images + 0.5) * 255.0, 0.0, 255.0)
                decoded = tf.clip_by_value((reconstruction + 0.5) * 255.0, 0.0, 255.0)
                distance = tf.reduce_mean(100.0 - tf.cast(ssimulacra2.scores(pixels, decoded), tf.float32))
                term = term + ssimulacra2_weight * tf.math.log(tf.maximum(distance, 0.0) + 1e-3)
            losses.append(term)
            reconstructions.append(reconstruction)
        weights = [early_weight if t < EARLY_ITERATIONS else 1.0 for t in range(iterations)]
        loss = tf.add_n([w * term for w, term in zip(weights, losses, strict=True)]) / sum(weights)
        return loss, reconstructions

    # ----------------------------------------------------------------------------------------
    # fused inference (exported)

    def compress(
        self,
        image: tf.Tensor,
        iterations: tf.Tensor,
        stop_msssim: tf.Tensor | None = None,
        stop_psnr: tf.Tensor | None = None,
        extra_iterations: tf.Tensor | None = None,
    ) -> dict[str, tf.Tensor]:
        """Encode ``image`` uint8 [B,H,W,3] (H, W multiples of 16).

        ``iterations`` int32 [B,h,w] is the number of iterations each cell receives; the loop runs
        to its maximum and cells past their count get zero bits. Returns ``bits`` int8
        [B,N,h,w,C] and ``reconstructions`` uint8 [B,N,H,W,3], the decoder's output after every
        iteration, exactly what a receiver decoding the same bits computes; and, for rate control,
        the quality of every iteration's image per cell: ``msssim_sums`` float32 [B,N,h,w,3,5],
        ``msssim_positions`` float32 [B,h,w,5] and ``squared_errors`` float32 [B,N,h,w] (see
        ``model_export/quality_terms.py``).

        Early exit: once an image's MS-SSIM reaches ``stop_msssim`` [B] or its PSNR ``stop_psnr``
        [B] (0 disables either), it needs only ``extra_iterations`` [B] more (room for rate
        control to give busy patches more than the uniform count); the loop ends when every image
        in the batch is done, so N may be below ``max(iterations)``.
        """
        pixels = tf.cast(image, tf.float32)
        x = pixels / 255.0 - 0.5
        shape = tf.shape(x)
        batch, height, width = shape[0], shape[1], shape[2]
        enc, dec = self.initial_states(batch, height, width)
        total = tf.reduce_max(iterations)
        never = tf.zeros([batch])
        stop_msssim = never if stop_msssim is None else tf.cast(stop_msssim, tf.float32)
        stop_psnr = never if stop_psnr is None else tf.cast(stop_psnr, tf.float32)
        extra = tf.zeros([batch], tf.int32) if extra_iterations is None else extra_iterations
        bits_ta, images_ta, sums_ta, errors_ta = (
            tf.TensorArray(dtype, size=0, dynamic_size=True)
            for dtype in (tf.int8, tf.uint8, tf.float32, tf.float32)
        )
        positions = tf.zeros([batch, height // CELL_SIZE, width // CELL_SIZE, len(POWER_FACTORS)])
        done_at = tf.fill([batch], total)  # per image: how many iterations it needs

        def body(t, reconstruction, enc, dec, arrays, positions, done_at):
            bits_ta, images_ta, sums_ta, errors_ta = arrays
            it = _iteration_index(x, t)
            gain = self.gain(it, reconstruction)
            codes, enc = self.encode_codes(x - reconstruction, it, enc, gain)
            bits = self.binarize(codes, training=False) * tf.cast(iterations > t, tf.float32)[..., None]
            reconstruction, dec = self.decode(bits, it, dec, reconstruction, gain)
            decoded = to_uint8(reconstruction)
            sums, positions = msssim_cell_terms(pixels, tf.cast(decoded, tf.float32))
            errors = cell_squared_errors(pixels, tf.cast(decoded, tf.float32))
            msssim, psnr = whole_image_quality(sums, positions, errors)
            met = ((stop_msssim > 0) & (msssim >= stop_msssim)) | ((stop_psnr > 0) & (psnr >= stop_psnr))
            done_at = tf.minimum(done_at, tf.where(met, t + 1 + extra, total))
            arrays = (
                bits_ta.write(t, tf.cast(bits, tf.int8)),
                images_ta.write(t, decoded),
                sums_ta.write(t, sums),
                errors_ta.write(t, errors),
            )
            return t + 1, reconstruction, enc, dec, arrays, positions, done_at

        _, _, _, _, arrays, positions, _ = tf.while_loop(
            lambda t, *state: t < tf.reduce_max(state[-1]),  # state[-1] is done_at
            body,
            (
                tf.constant(0),
                tf.zeros_like(x),
                enc,
                dec,
                (bits_ta, images_ta, sums_ta, errors_ta),
                positions,
                done_at,
            ),
        )
        bits_ta, images_ta, sums_ta, errors_ta = arrays
        return {
            "bits": _time_to_axis1(bits_ta.stack()),
            "reconstructions": _time_to_axis1(images_ta.stack()),
            "msssim_sums": _time_to_axis1(sums_ta.stack()),
            "msssim_positions": positions,
            "squared_errors": _time_to_axis1(errors_ta.stack()),
        }

    def decompress(self, bits: tf.Tensor) -> dict[str, tf.Tensor]:
        """Decode ``bits`` int8 [B,N,h,w,C] → ``reconstructions`` uint8 [B,N,H,W,3] after each iteration
        and ``reconstruction`` uint8 [B,H,W,3], the last of them (all a receiver needs: asking for it
        alone with ``output_filter`` moves one image instead of N)."""
        shape = tf.shape(bits)
        batch, total, h, w = shape[0], shape[1], shape[2], shape[3]
        _, dec = self.initial_states(batch, h * CELL_SIZE, w * CELL_SIZE)
        bits_f = tf.cast(bits, tf.float32)
        images_ta = tf.TensorArray(tf.uint8, size=total)

        def body(t, reconstruction, dec, images_ta):
            it = _iteration_index(bits_f[:, 0], t)
            reconstruction, dec = self.decode(bits_f[:, t], it, dec, reconstruction)
            return t + 1, reconstruction, dec, images_ta.write(t, to_uint8(reconstruction))

        _, final, _, images_ta = tf.while_loop(
            lambda t, *_: t < total,
            body,
            (tf.constant(0), tf.zeros([batch, h * CELL_SIZE, w * CELL_SIZE, 3]), dec, images_ta),
        )
        return {"reconstructions": _time_to_axis1(images_ta.stack()), "reconstruction": to_uint8(final)}


def to_uint8(reconstruction: tf.Tensor) -> tf.Tensor:
    """Map a reconstruction in [-0.5, 0.5] to uint8 pixels, rounding to nearest."""
    return tf.cast(tf.round(tf.clip_by_value((reconstruction + 0.5) * 255.0, 0.0, 255.0)), tf.uint8)


def _luma(images: tf.Tensor) -> tf.Tensor:
    """BT.601 luma of RGB ``images`` [B,H,W,3]: [B,H,W]."""
    return tf.tensordot(images, tf.constant([0.299, 0.587, 0.114]), axes=1)


def local_chroma(images: tf.Tensor, block: int = 8) -> tf.Tensor:
    """The chroma of ``images`` [B,H,W,3] (RGB in [-0.5, 0.5]) as BT.601's B − Y and R − Y, averaged
    over ``block``×``block`` squares: a patch's colour, [B,H/block,W/block,2]."""
    luma = _luma(images)[..., None]
    chroma = tf.concat([images[..., 2:3] - luma, images[..., 0:1] - luma], axis=-1)
    return tf.nn.avg_pool2d(chroma, block, block, "VALID")


def _luma_gradients(images: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Horizontal and vertical forward differences of BT.601 luma, cropped to a common [B,H-1,W-1]."""
    luma = _luma(images)
    return luma[:, :-1, 1:] - luma[:, :-1, :-1], luma[:, 1:, :-1] - luma[:, :-1, :-1]


def edge_gradient_error(images: tf.Tensor, reconstruction: tf.Tensor) -> tf.Tensor:
    """Mean |luma gradient error| of ``reconstruction`` against ``images`` [B,H,W,3], each pixel
    weighted by the original's gradient magnitude (weights summing to 1 per batch): error at edges,
    in luma units per pixel, a blurred or stepped edge's cost. Flat areas weigh almost nothing."""
    gx, gy = _luma_gradients(images)
    rx, ry = _luma_gradients(reconstruction)
    weight = tf.sqrt(gx * gx + gy * gy + 1e-8)
    error = tf.abs(gx - rx) + tf.abs(gy - ry)
    return tf.reduce_sum(weight * error) / tf.reduce_sum(weight)


def _iteration_index(like: tf.Tensor, t: tf.Tensor | int) -> tf.Tensor:
    """int32 [B] filled with ``t``, keeping ``like``'s static batch size."""
    return tf.zeros_like(like[:, 0, 0, 0], dtype=tf.int32) + t


def variables_by_path(module: tf.Module) -> list[tuple[str, tf.Variable]]:
    """Every variable of ``module`` with its attribute path ("enc_gru1/input_conv/kernel")."""
    found = module._flatten(predicate=lambda v: isinstance(v, tf.Variable), with_path=True)
    return [("/".join(str(part) for part in path), variable) for path, variable in found]


#: Log-gain step per iteration past the trained ones. The residual shrinks far more slowly late than
#: early (Kodak: 0.3 dB per iteration after ten, 2.6 dB after one), so continuing the early trend
#: (0.33 per iteration at ten) scales the residual past the encoder's range within a few iterations and
#: caps the decoder's correction (tanh / gain) below the error left: quality stops rising
#: (docs/decisions.md 21).
LATE_LOG_GAIN_STEP = 0.08


def _extend_table(values: tf.Tensor, length: int) -> tf.Tensor:
    """``values`` [n] cut or continued to ``length`` entries, rising by ``LATE_LOG_GAIN_STEP`` each."""
    n = int(values.shape[0])
    if length <= n:
        return values[:length]
    more = values[-1] + LATE_LOG_GAIN_STEP * tf.range(1, length - n + 1, dtype=values.dtype)
    return tf.concat([values, more], 0)


def _time_to_axis1(stacked: tf.Tensor) -> tf.Tensor:
    rank = tf.rank(stacked)
    perm = tf.concat([[1, 0], tf.range(2, rank)], 0)
    return tf.transpose(stacked, perm)
