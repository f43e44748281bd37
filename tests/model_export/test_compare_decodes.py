import numpy as np
import tensorflow as tf

from model_export.compare_decodes import largest_difference
from model_export.export import export_saved_model
from model_export.model import RecurrentCodec
from service.backend.embedded import LoadedModel
from tests.model_export.test_model import TINY


def test_exports_of_the_same_decoder_decode_alike_and_other_kernels_do_not(tmp_path) -> None:
    tf.random.set_seed(7)
    codec = RecurrentCodec(TINY)
    versions = {
        name: export_saved_model(codec, tmp_path / name, gru_kernels=kernels, fused_gates=True)
        for name, kernels in (("float16", "float16"), ("int8-encoder", "int8-encoder"), ("int8", "int8"))
    }
    loaded = {name: LoadedModel("tiny", i, path) for i, (name, path) in enumerate(versions.items(), 1)}
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (32, 48, 3), dtype=np.uint8) for _ in range(2)]

    same, frames = largest_difference(loaded["float16"], loaded["int8-encoder"], images, TINY.max_iterations)
    assert (same, frames) == (0, 2 * TINY.max_iterations)
    other, _ = largest_difference(loaded["float16"], loaded["int8"], images, TINY.max_iterations)
    assert other > 0  # the decoder's kernels rounded to int8 decode the same bits to other pixels
