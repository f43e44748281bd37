import numpy as np
import tensorflow as tf

from model_export.context_fit import collect_codes, fit_context_model
from model_export.model import RecurrentCodec
from service.codec.entropy import CODER_LEARNED, CODER_RAW, decode_payload, encode_payload
from tests.model_export.test_model import TINY


def _copied_channels(seed: int, images: int = 6) -> list[np.ndarray]:
    """Codes whose channel c repeats channel c-1 at odd c: half the bits are predictable."""
    rng = np.random.default_rng(seed)
    codes = []
    for _ in range(images):
        bits = rng.choice(np.array([-1, 1], np.int8), (2, 6, 8, 8))
        bits[..., 1::2] = bits[..., 0::2]
        codes.append(bits)
    return codes


def test_fitted_model_learns_a_redundancy_and_codes_unseen_codes_exactly() -> None:
    model = fit_context_model(_copied_channels(0), iterations=2, steps=150)
    assert model.weights.dtype == np.int64 and model.weights.shape == (2, 8, 8 * 4 + 28)
    unseen = _copied_channels(1, images=1)[0]
    cells = np.full(unseen.shape[1:3], 2)
    payload = encode_payload(CODER_LEARNED, unseen, cells, model)
    raw = encode_payload(CODER_RAW, unseen, cells)
    assert len(payload) < 0.6 * len(raw)  # about half the bits are free
    np.testing.assert_array_equal(decode_payload(CODER_LEARNED, payload, cells, 8, model), unseen)


def test_collect_codes_encodes_whole_cells_of_every_image() -> None:
    tf.random.set_seed(0)
    images = [np.zeros((40, 50, 3), np.uint8), np.full((16, 16, 3), 200, np.uint8)]
    codes = collect_codes(RecurrentCodec(TINY), images, iterations=2)
    assert [c.shape for c in codes] == [(2, 2, 3, TINY.bits_per_cell), (2, 1, 1, TINY.bits_per_cell)]
    assert all(set(np.unique(c)) <= {-1, 1} for c in codes)
