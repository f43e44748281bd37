import numpy as np
import pytest
import tensorflow as tf

from benchmarks.colour import BORDER, ciede2000_error, edge_fidelity
from model_export.evaluate import evaluate_images
from model_export.model import CodecConfig, RecurrentCodec

TINY = CodecConfig(
    encoder_channels=(8, 16, 16, 16), decoder_channels=(16, 16, 16, 16), bits_per_cell=8, max_iterations=2
)


def test_curves_give_the_colour_error_over_the_whole_image_and_inside_its_border() -> None:
    tf.random.set_seed(0)
    codec = RecurrentCodec(TINY)
    rng = np.random.default_rng(0)
    images = [(f"{i}.png", rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)) for i in range(2)]
    curves = evaluate_images(codec, images, iterations=2, progress=False)
    assert curves.ciede2000.shape == curves.ciede2000_inside.shape == (2, 2)
    _, rgb = images[0]
    decoded = codec.compress(tf.constant(rgb[None]), tf.fill([1, 3, 4], 2))["reconstructions"].numpy()[0, 1]
    error = ciede2000_error(rgb, decoded)
    assert curves.ciede2000[0, 1] == pytest.approx(error.mean(), rel=1e-6)
    inside = error[BORDER:-BORDER, BORDER:-BORDER]
    assert curves.ciede2000_inside[0, 1] == pytest.approx(inside.mean(), rel=1e-6)
    assert f"{BORDER}px inside" in curves.summary()


def test_curves_give_how_the_edges_come_through() -> None:
    tf.random.set_seed(0)
    codec = RecurrentCodec(TINY)
    x = np.arange(64)
    edge = np.where(x[None, :] + 0.5 * np.arange(48)[:, None] > 40, 200, 40).astype(np.uint8)
    rgb = np.repeat(edge[..., None], 3, axis=-1)
    curves = evaluate_images(codec, [("edge.png", rgb)], iterations=2, progress=False)
    decoded = codec.compress(tf.constant(rgb[None]), tf.fill([1, 3, 4], 2))["reconstructions"].numpy()[0, 1]
    assert (curves.edge_turn[0, 1], curves.edge_error[0, 1]) == pytest.approx(edge_fidelity(rgb, decoded))
    assert curves.edge_error[0, 1] > 0  # an untrained codec does not draw the edge
    assert "edge turn" in curves.summary()
