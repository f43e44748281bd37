"""The receiver's luma-guided chroma filter (bitstream formats 10 and 11): chroma noise the luma does not
explain is smoothed, colour edges along luma edges and the luma itself are kept; compress measures what
the receiver shows, leaves the filter out where it would lower the network's quality (format 8), and formats
8 and 9 decode as they did."""

from __future__ import annotations

import dataclasses

import numpy as np
from PIL import Image

from benchmarks.colour import mean_ciede2000
from service.codec import refinement
from service.codec.bitstream import Bitstream
from service.codec.pipeline import ImageCodec
from service.codec.postfilters import Postfilters, filter_chroma, network_shown
from service.codec.quality import msssim
from service.codec.rate_control import Target
from tests.conftest import KODAK


def _luma(image: np.ndarray) -> np.ndarray:
    return image.astype(np.float64) @ np.array([0.299, 0.587, 0.114])


def test_chroma_noise_on_a_flat_area_is_smoothed_and_the_luma_kept() -> None:
    rng = np.random.default_rng(3)
    clean = np.full((48, 64, 3), (120, 140, 90), np.uint8)
    # colour noise with no luma in it: ±8 levels along the Cr direction (R up, G down)
    noise = rng.integers(-8, 9, (48, 64, 1)) * np.array([1.0, -0.51, 0.0])
    noisy = np.clip(np.rint(clean + noise), 0, 255).astype(np.uint8)
    out = filter_chroma(noisy)
    assert np.abs(_luma(out) - _luma(noisy)).max() <= 1.0
    assert mean_ciede2000(clean, out) < 0.5 * mean_ciede2000(clean, noisy)


def test_a_colour_edge_along_a_luma_edge_stays_sharp() -> None:
    image = np.zeros((32, 32, 3), np.uint8)
    image[:, :16] = (200, 40, 40)  # red
    image[:, 16:] = (30, 60, 200)  # blue, darker: the luma edge carries the colour edge
    out = filter_chroma(image).astype(int)
    assert (out[:, 15, 0] >= 190).all() and (out[:, 16, 2] >= 190).all()  # no colour bled across the edge
    away = np.r_[0:13, 19:32]
    assert np.abs(out[:, away] - image[:, away]).max() <= 1


def test_images_smaller_than_the_window_pass_unchanged() -> None:
    image = np.arange(2 * 5 * 3, dtype=np.uint8).reshape(2, 5, 3)
    np.testing.assert_array_equal(filter_chroma(image), image)
    np.testing.assert_array_equal(filter_chroma(np.zeros((0, 4, 3), np.uint8)), np.zeros((0, 4, 3), np.uint8))


def test_filtering_in_bands_of_rows_gives_the_pixels_of_the_whole_image_at_once() -> None:
    photo = np.asarray(Image.open(KODAK / "kodim23.png").convert("RGB"))[:203, :97]
    whole = filter_chroma(photo, band_rows=photo.shape[0])
    assert np.abs(whole.astype(int) - photo).max() > 0  # it does filter
    for band_rows in (1, 3, 16, 128):
        np.testing.assert_array_equal(filter_chroma(photo, band_rows=band_rows), whole)


def test_the_layer_of_format_8_is_format_7_chroma_filtered() -> None:
    rng = np.random.default_rng(5)
    original = rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)
    base = np.full_like(original, 128)
    payload = refinement.encode(refinement.ResidualTransform.of(original, base).trial(12.0))
    seven = refinement.decode(base, payload, 7)
    np.testing.assert_array_equal(refinement.decode(base, payload, 8), filter_chroma(seven))


def _crop(name: str) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(Image.open(KODAK / name).convert("RGB"))[:96, :160])


def test_compress_measures_the_filtered_image_and_older_formats_decode_unfiltered(backend_client) -> None:
    codec = ImageCodec(backend_client, "residual_gru", refinement_base_iterations=None)  # the network alone
    rgb = _crop("kodim12.png")  # sky and sea: the filter takes colour noise out
    result = codec.compress(rgb, Target("msssim", 0.93))
    stream = Bitstream.from_bytes(result.bitstream)
    assert stream.format_version == 10 and result.iterations > 0
    decoded = codec.decompress(result.bitstream).image
    np.testing.assert_array_equal(decoded, result.reconstruction)
    *_, last = codec.decompress_progressive(result.bitstream)[1]
    np.testing.assert_array_equal(last, decoded)
    # the same bits as format 8: deblocked, not chroma-filtered; format 10 is that image filtered
    deblocked = codec.decompress(dataclasses.replace(stream, format_version=8).to_bytes()).image
    assert not np.array_equal(deblocked, decoded)
    np.testing.assert_array_equal(decoded, filter_chroma(deblocked))
    np.testing.assert_array_equal(network_shown(deblocked, Postfilters.NONE), deblocked)


def test_compress_leaves_the_filter_out_where_it_would_lower_the_quality(backend_client) -> None:
    codec = ImageCodec(backend_client, "residual_gru", refinement_base_iterations=None)  # the network alone
    rgb = _crop("kodim23.png")  # the parrots' blurred background: colour the luma does not carry
    result = codec.compress(rgb, Target("msssim", 0.93))
    stream = Bitstream.from_bytes(result.bitstream)
    assert stream.format_version == 8 and stream.postfilters == Postfilters.DEBLOCK and result.target_met
    decoded = codec.decompress(result.bitstream).image
    np.testing.assert_array_equal(decoded, result.reconstruction)
    assert msssim(rgb, filter_chroma(decoded)) < msssim(rgb, decoded)
