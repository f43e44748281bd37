"""The network's image deblocked on the 8-px grid (bitstream formats 8 and up): small steps between flat
sides smoothed, the picture's edges and everything off the grid left alone; compress measures exactly
what the receiver shows, and bitstreams of earlier formats decode as they always did."""

from __future__ import annotations

import dataclasses

import numpy as np

from benchmarks.colour import grid_blocking
from service.codec.bitstream import Bitstream
from service.codec.deblocking import NETWORK_THRESHOLDS, deblock, deblock_network
from service.codec.pipeline import ImageCodec
from service.codec.rate_control import Target


def test_a_small_step_on_the_grid_is_smoothed_and_an_edge_is_kept() -> None:
    image = np.full((16, 32, 3), 100, np.uint8)
    image[:, 8:16] = 110  # a coding step: flat sides, 10 levels
    image[:, 16:] = 200  # the picture's edge: 90 levels
    out = deblock_network(image).astype(int)
    assert abs(out[0, 8, 0] - out[0, 7, 0]) < 10  # smoothed, each side moved at most 5 levels
    assert 0 < out[0, 7, 0] - 100 <= 5 and 0 < 110 - out[0, 8, 0] <= 5
    assert out[0, 16, 0] == 200 and out[0, 15, 0] == 110  # the edge is the picture's: kept
    off_grid = np.ones(32, bool)
    off_grid[[6, 7, 8, 9, 14, 15, 16, 17, 22, 23, 24, 25]] = False
    np.testing.assert_array_equal(out[:, off_grid], image[:, off_grid].astype(int))


def test_the_network_image_deblocked_in_bands_of_rows_is_the_whole_image_deblocked_at_once() -> None:
    rng = np.random.default_rng(4)
    for height, width in ((600, 40), (261, 17), (520, 9), (7, 30)):
        # steps of up to 30 levels between flat 8×8 blocks: some edges below the thresholds, some above
        blocks = rng.integers(100, 130, (-(-height // 8), -(-width // 8), 3))
        image = np.repeat(np.repeat(blocks, 8, 0), 8, 1)[:height, :width]
        image = (image + rng.integers(0, 3, image.shape)).astype(np.uint8)
        whole = image.astype(np.int16)
        deblock(whole, *NETWORK_THRESHOLDS)
        assert not np.array_equal(whole, image)  # it does filter
        np.testing.assert_array_equal(deblock_network(image), whole)


def test_compress_measures_what_the_receiver_shows_and_the_grid_shows_less(
    backend_client, kodak_image
) -> None:
    codec = ImageCodec(backend_client, "residual_gru", refinement_base_iterations=None)  # the network alone
    rgb = np.ascontiguousarray(kodak_image[:128, :192])
    result = codec.compress(rgb, Target("msssim", 0.93))
    stream = Bitstream.from_bytes(result.bitstream)
    assert stream.network_deblocked and result.iterations > 0
    decoded = codec.decompress(result.bitstream).image
    np.testing.assert_array_equal(decoded, result.reconstruction)
    *_, last = codec.decompress_progressive(result.bitstream)[1]
    np.testing.assert_array_equal(last, decoded)
    # the same bits as format 3: the backend's image as it is, with more blocking on the 8-px grid
    plain = codec.decompress(dataclasses.replace(stream, format_version=3).to_bytes()).image
    assert not np.array_equal(plain, decoded)
    assert grid_blocking(rgb, decoded) < grid_blocking(rgb, plain)
