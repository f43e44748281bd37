import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from model_export.model import CELL_SIZE, EARLY_ITERATIONS, LATE_LOG_GAIN_STEP, CodecConfig, RecurrentCodec

TINY = CodecConfig(
    encoder_channels=(8, 16, 16, 16), decoder_channels=(16, 16, 16, 16), bits_per_cell=8, max_iterations=4
)


@pytest.fixture(scope="module")
def codec() -> RecurrentCodec:
    tf.random.set_seed(0)
    return RecurrentCodec(TINY)


def test_forward_returns_one_reconstruction_per_iteration(codec: RecurrentCodec) -> None:
    images = tf.random.uniform([2, 32, 48, 3]) - 0.5
    log_loss, recons = codec.forward(images, iterations=3, training=False)
    l1_loss, _ = codec.forward(images, iterations=3, training=False, log_loss=False)
    assert len(recons) == 3
    assert all(r.shape == images.shape for r in recons)
    assert np.isfinite(float(log_loss)) and float(l1_loss) > 0
    # mean of log L1 is the log of the geometric mean, never above the arithmetic mean
    assert np.exp(float(log_loss)) <= float(l1_loss) * (1 + 1e-4)


def test_early_weight_weighs_the_first_iterations_more(codec: RecurrentCodec) -> None:
    images = tf.random.uniform([2, 32, 48, 3]) - 0.5
    plain, recons = codec.forward(images, iterations=EARLY_ITERATIONS + 2, training=False)
    weighted, _ = codec.forward(images, iterations=EARLY_ITERATIONS + 2, training=False, early_weight=3.0)
    logs = [np.log(float(tf.reduce_mean(tf.abs(images - r))) + 1e-6) for r in recons]
    weights = [3.0] * EARLY_ITERATIONS + [1.0, 1.0]
    assert float(plain) == pytest.approx(np.mean(logs), rel=1e-5)
    assert float(weighted) == pytest.approx(np.dot(weights, logs) / sum(weights), rel=1e-5)


def test_training_gradients_reach_every_weight(codec: RecurrentCodec) -> None:
    images = tf.random.uniform([2, 32, 32, 3]) - 0.5
    with tf.GradientTape() as tape:
        loss, _ = codec.forward(images, iterations=2)
    grads = tape.gradient(loss, codec.trainable_variables)
    missing = [v.name for v, g in zip(codec.trainable_variables, grads, strict=True) if g is None]
    # log_gain entries past the unrolled iterations get zero, not None; every layer must get a gradient.
    assert missing == []


def test_compress_shapes_and_stop_map(codec: RecurrentCodec) -> None:
    image = tf.cast(tf.random.uniform([1, 64, 32, 3], 0, 255), tf.uint8)
    iterations = tf.constant(np.array([[[3, 1], [2, 3], [0, 3], [3, 3]]], np.int32))
    out = codec.compress(image, iterations)
    bits, recons = out["bits"].numpy(), out["reconstructions"].numpy()
    assert bits.shape == (1, 3, 64 // CELL_SIZE, 32 // CELL_SIZE, TINY.bits_per_cell)
    assert recons.shape == (1, 3, 64, 32, 3) and recons.dtype == np.uint8
    assert set(np.unique(bits)) <= {-1, 0, 1}
    for t in range(3):
        active = iterations.numpy()[0] > t
        assert np.all(np.abs(bits[0, t][active]) == 1)
        assert np.all(bits[0, t][~active] == 0)


def test_stopped_cells_keep_their_pixels_when_the_config_freezes_them() -> None:
    tf.random.set_seed(1)
    frozen = RecurrentCodec(dataclasses.replace(TINY, freeze_stopped_cells=True))
    image = tf.cast(tf.random.uniform([1, 32, 32, 3], 0, 255), tf.uint8)
    iterations = tf.constant([[[1, 3], [2, 3]]])
    recons = frozen.compress(image, iterations)["reconstructions"].numpy()[0]  # [3, 32, 32, 3]
    np.testing.assert_array_equal(recons[2, :16, :16], recons[0, :16, :16])  # stopped after 1
    np.testing.assert_array_equal(recons[2, 16:, :16], recons[1, 16:, :16])  # stopped after 2
    assert not np.array_equal(recons[2, :16, 16:], recons[1, :16, 16:])  # still refining


def test_early_exit_stops_extra_iterations_after_the_quality_is_reached(codec: RecurrentCodec) -> None:
    image = tf.cast(tf.random.uniform([2, 32, 32, 3], 0, 255), tf.uint8)
    iterations = tf.fill([2, 2, 2], 4)
    assert codec.compress(image, iterations)["bits"].shape[1] == 4
    reached = codec.compress(image, iterations, tf.zeros([2]), tf.constant([1.0, 1.0]), tf.constant([1, 0]))
    assert reached["bits"].shape[1] == 2  # met after 1; the batch runs until its last image is done
    assert reached["msssim_sums"].shape[1] == 2
    never = tf.constant([99.0, 99.0])  # dB of PSNR
    unreachable = codec.compress(image, iterations, tf.zeros([2]), never, tf.ones([2], tf.int32))
    assert unreachable["bits"].shape[1] == 4


def test_decompress_reproduces_compress_exactly(codec: RecurrentCodec) -> None:
    image = tf.cast(tf.random.uniform([2, 32, 48, 3], 0, 255), tf.uint8)
    out = codec.compress(image, tf.fill([2, 2, 3], 4))
    again = codec.decompress(out["bits"])
    np.testing.assert_array_equal(again["reconstructions"].numpy(), out["reconstructions"].numpy())
    np.testing.assert_array_equal(again["reconstruction"].numpy(), out["reconstructions"].numpy()[:, -1])


def test_config_json_round_trip() -> None:
    assert CodecConfig.from_json(TINY.to_json()) == TINY
    primed = dataclasses.replace(TINY, priming=2)
    assert CodecConfig.from_json(primed.to_json()) == primed


def test_priming_changes_the_first_iteration_and_every_signature_agrees(codec: RecurrentCodec) -> None:
    primed = RecurrentCodec(dataclasses.replace(TINY, priming=1))
    primed.copy_weights_from(codec)
    image = tf.cast(tf.random.uniform([1, 32, 48, 3], 0, 255), tf.uint8)
    plain, out = codec.compress(image, tf.fill([1, 2, 3], 3)), primed.compress(image, tf.fill([1, 2, 3], 3))
    # the same weights: the extra passes alone change the first codes and the first image
    assert not np.array_equal(plain["bits"].numpy()[:, 0], out["bits"].numpy()[:, 0])
    assert not np.array_equal(plain["reconstructions"].numpy()[:, 0], out["reconstructions"].numpy()[:, 0])
    # a receiver primes alike: the fused decoder, and one decode_step per iteration
    again = primed.decompress(out["bits"])
    np.testing.assert_array_equal(again["reconstructions"].numpy(), out["reconstructions"].numpy())
    _, states = primed.initial_states(1, 32, 48)
    reconstruction = tf.zeros([1, 32, 48, 3])
    for t in range(out["bits"].shape[1]):
        bits = tf.cast(out["bits"][:, t], tf.float32)
        reconstruction, states = primed.decode(bits, tf.fill([1], t), states, reconstruction)
        step_image = np.round(np.clip((reconstruction.numpy() + 0.5) * 255.0, 0, 255))
        np.testing.assert_allclose(step_image, out["reconstructions"].numpy()[:, t], atol=1)
    # and training sees the same passes (a Python iteration count takes the static path)
    images = tf.cast(image, tf.float32) / 255.0 - 0.5
    _, trained = primed.forward(images, iterations=1, training=False)
    _, plain_trained = codec.forward(images, iterations=1, training=False)
    assert not np.allclose(trained[0].numpy(), plain_trained[0].numpy())


def test_a_fresh_gain_estimator_leaves_a_warm_started_codec_unchanged(codec: RecurrentCodec) -> None:
    adaptive = RecurrentCodec(dataclasses.replace(TINY, adaptive_gain=True, max_iterations=6))
    adaptive.copy_weights_from(codec)
    np.testing.assert_allclose(adaptive.log_gain.numpy()[:4], codec.log_gain.numpy())
    image = tf.cast(tf.random.uniform([1, 32, 48, 3], 0, 255), tf.uint8)
    counts = tf.fill([1, 2, 3], 4)
    np.testing.assert_array_equal(
        adaptive.compress(image, counts)["bits"].numpy(), codec.compress(image, counts)["bits"].numpy()
    )


def test_the_adaptive_gain_varies_smoothly_in_space_and_trains() -> None:
    tf.random.set_seed(3)
    adaptive = RecurrentCodec(dataclasses.replace(TINY, adaptive_gain=True))
    last = adaptive.gain_estimator.convs[-1]
    last.kernel.assign(tf.random.normal(last.kernel.shape, stddev=0.5))
    previous = tf.random.uniform([1, 64, 64, 3]) - 0.5
    gain = adaptive.gain(tf.constant([2]), previous).numpy()[0, ..., 0]
    assert gain.shape == (64, 64) and gain.std() > 0
    assert np.exp(-2) * 0.99 < (gain / np.exp(adaptive.log_gain.numpy()[2])).min()
    # bilinear: no step at a cell border larger than the steps inside cells
    steps = np.abs(np.diff(gain, axis=1))
    assert steps[:, 15::16].max() <= steps.max() * 1.0001
    with tf.GradientTape() as tape:
        loss, _ = adaptive.forward(tf.random.uniform([2, 32, 32, 3]) - 0.5, iterations=3)
    grads = tape.gradient(loss, adaptive.gain_estimator.trainable_variables)
    assert all(g is not None and float(tf.reduce_max(tf.abs(g))) > 0 for g in grads)


def test_untrained_gains_continue_the_trained_trend(codec: RecurrentCodec) -> None:
    longer = RecurrentCodec(dataclasses.replace(TINY, max_iterations=8))
    source = RecurrentCodec(TINY)
    source.log_gain.assign([0.0, 1.0, 2.0, 9.0])  # the last entry never trained
    longer.copy_weights_from(source, trained_iterations=3)
    step = LATE_LOG_GAIN_STEP  # late residuals shrink slowly: the gain rises slowly past the trained ones
    np.testing.assert_allclose(longer.log_gain.numpy(), [0, 1, 2, *(2 + step * np.arange(1, 6))], rtol=1e-6)


def test_the_msssim_term_mixes_log_l1_with_log_of_msssims_distance(codec: RecurrentCodec) -> None:
    from model_export.quality_terms import msssim_per_image

    tf.random.set_seed(3)
    images = tf.random.uniform([2, 96, 96, 3]) - 0.5
    plain, recons = codec.forward(images, iterations=2, training=False)
    mixed, _ = codec.forward(images, iterations=2, training=False, msssim_weight=0.8)
    terms = []
    for r in recons:
        l1 = np.log(float(tf.reduce_mean(tf.abs(images - r))) + 1e-6)
        pixels = lambda x: tf.clip_by_value((x + 0.5) * 255.0, 0.0, 255.0)  # noqa: E731
        distance = float(tf.reduce_mean(1.0 - msssim_per_image(pixels(images), pixels(r))))
        terms.append(0.2 * l1 + 0.8 * np.log(distance + 1e-6))
    assert float(mixed) == pytest.approx(np.mean(terms), rel=1e-4)
    assert float(mixed) != pytest.approx(float(plain))
    with tf.GradientTape() as tape:
        loss, _ = codec.forward(images, iterations=2, msssim_weight=0.8)
    grads = tape.gradient(loss, codec.trainable_variables)
    assert all(g is not None and np.all(np.isfinite(tf.convert_to_tensor(g))) for g in grads)


def test_local_chroma_is_a_blocks_mean_colour_difference_from_its_luma() -> None:
    from model_export.model import local_chroma

    grey = tf.zeros([1, 16, 16, 3])
    assert np.allclose(local_chroma(grey).numpy(), 0.0)
    red = tf.concat([tf.fill([1, 16, 16, 1], 0.5), tf.fill([1, 16, 16, 2], -0.5)], axis=-1)
    chroma = local_chroma(red).numpy()
    assert chroma.shape == (1, 2, 2, 2)
    luma = 0.299 * 0.5 - 0.701 * 0.5
    assert np.allclose(chroma[..., 0], -0.5 - luma) and np.allclose(chroma[..., 1], 0.5 - luma)


def test_the_colour_term_adds_log_l1_of_block_chroma(codec: RecurrentCodec) -> None:
    from model_export.model import local_chroma

    tf.random.set_seed(4)
    images = tf.random.uniform([2, 32, 32, 3]) - 0.5
    plain, recons = codec.forward(images, iterations=2, training=False)
    coloured, _ = codec.forward(images, iterations=2, training=False, colour_weight=0.25)
    drift = [float(tf.reduce_mean(tf.abs(local_chroma(images) - local_chroma(r)))) for r in recons]
    expected = float(plain) + 0.25 * np.mean(np.log(np.array(drift) + 1e-6))
    assert float(coloured) == pytest.approx(expected, rel=1e-4)
    with tf.GradientTape() as tape:
        loss, _ = codec.forward(images, iterations=2, colour_weight=0.25)
    grads = tape.gradient(loss, codec.trainable_variables)
    assert all(g is not None and np.all(np.isfinite(tf.convert_to_tensor(g))) for g in grads)


def test_the_edge_gradient_error_weighs_the_originals_edges() -> None:
    from model_export.model import edge_gradient_error

    ramp = tf.tile(tf.reshape(tf.where(tf.range(16) < 8, -0.4, 0.4), [1, 1, 16, 1]), [1, 16, 1, 3])
    assert float(edge_gradient_error(ramp, ramp)) == pytest.approx(0.0, abs=1e-6)
    blurred = tf.nn.avg_pool2d(
        tf.pad(ramp, [[0, 0], [0, 0], [1, 1], [0, 0]], "SYMMETRIC"), [1, 3], 1, "VALID"
    )
    assert float(edge_gradient_error(ramp, blurred)) > 0.3  # the edge's 0.8 step spread over 3 px
    noisy_flat = tf.zeros([1, 16, 16, 3]) + 0.05 * tf.random.stateless_normal([1, 16, 16, 3], [1, 2])
    # error in a flat area weighs almost nothing next to the same error on the edge
    assert float(edge_gradient_error(ramp, ramp + noisy_flat)) < float(edge_gradient_error(ramp, blurred)) / 3


def test_the_edge_term_adds_log_edge_gradient_error(codec: RecurrentCodec) -> None:
    from model_export.model import edge_gradient_error

    tf.random.set_seed(5)
    images = tf.random.uniform([2, 32, 32, 3]) - 0.5
    plain, recons = codec.forward(images, iterations=2, training=False)
    edged, _ = codec.forward(images, iterations=2, training=False, edge_weight=0.3)
    errors = [float(edge_gradient_error(images, r)) for r in recons]
    expected = float(plain) + 0.3 * np.mean(np.log(np.array(errors) + 1e-6))
    assert float(edged) == pytest.approx(expected, rel=1e-4)


def test_int8_gru_kernels_copy_in_within_half_a_step_and_between_int8_codecs_exactly(
    codec: RecurrentCodec,
) -> None:
    from model_export.layers import dequantize_kernel
    from model_export.model import variables_by_path

    shipped = RecurrentCodec(TINY, weight_dtype=tf.float16, gru_kernel_dtype=tf.int8)
    shipped.copy_weights_from(codec)
    mine, theirs = dict(variables_by_path(shipped)), dict(variables_by_path(codec))
    assert mine["enc_gru2/input_conv/kernel"].dtype == tf.int8
    assert mine["enc_conv/kernel"].dtype == tf.float16  # only the GRU cells' kernels
    path = "enc_gru2/input_conv/kernel"
    scale = mine[f"{path}_scale"]
    error = dequantize_kernel(mine[path], scale) - theirs[path]
    assert float(tf.reduce_max(tf.abs(error))) <= float(tf.reduce_max(tf.cast(scale, tf.float32))) / 2 * 1.001
    again = RecurrentCodec(TINY, weight_dtype=tf.float16, gru_kernel_dtype=tf.int8)
    again.copy_weights_from(shipped)  # a re-export of an int8 version keeps its weights bit for bit
    for (path, a), (_, b) in zip(variables_by_path(again), variables_by_path(shipped), strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=path)
    back = RecurrentCodec(TINY)
    back.copy_weights_from(shipped)
    image = tf.cast(tf.random.uniform([1, 32, 48, 3], 0, 255, seed=5), tf.uint8)
    counts = tf.fill([1, 2, 3], 3)
    np.testing.assert_array_equal(
        back.compress(image, counts)["bits"].numpy(), shipped.compress(image, counts)["bits"].numpy()
    )
