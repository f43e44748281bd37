"""The refinement layer: its payload round trip, its quantiser and its errors."""

import dataclasses
import io
import struct

import numpy as np
import pytest
from PIL import Image

from service.codec import coefficient_coder, refinement
from service.codec.quality import psnr
from service.errors import InvalidBitstream

REFINED_FORMAT_VERSION = refinement.FORMAT  # the layer's own format


@pytest.fixture(scope="module")
def pair(kodak_image) -> tuple[np.ndarray, np.ndarray]:
    """An original (odd size: blocks cut at the edges) and a coarse base image of it."""
    original = np.ascontiguousarray(kodak_image[:123, :201])
    buffer = io.BytesIO()
    Image.fromarray(original).save(buffer, "JPEG", quality=10)
    return original, np.asarray(Image.open(buffer).convert("RGB"))


@pytest.mark.parametrize(
    ("step", "aim"),
    [
        (refinement.MIN_STEP, "msssim"),
        (3.0, "msssim"),
        (17.3, "psnr"),
        (150.0, "msssim"),
        (2.0, "ssimulacra2"),
        (40.0, "ssimulacra2"),
    ],
)
def test_the_receiver_decodes_what_the_encoder_measured(pair, step: float, aim: str) -> None:
    original, base = pair
    trial = refinement.ResidualTransform.of(original, base, aim).trial(step)
    # the mode byte: trained counts; for MS-SSIM finer means and adaptive steps; for SSIMULACRA 2 the
    # perceptual weights and adaptive steps
    assert refinement.encode(trial)[2] == {"msssim": 7, "psnr": 4, "ssimulacra2": 14}[aim]
    assert (trial.levels is not None) == (aim != "psnr")
    np.testing.assert_array_equal(
        refinement.decode(base, refinement.encode(trial), REFINED_FORMAT_VERSION), trial.image
    )


def test_finer_steps_cost_more_bytes_and_give_more_quality(pair) -> None:
    original, base = pair
    transform = refinement.ResidualTransform.of(original, base)
    trials = [transform.trial(s) for s in (32.0, 8.0, 2.0)]
    sizes = [len(refinement.encode(t)) for t in trials]
    qualities = [psnr(original, t.image) for t in trials]
    assert sizes == sorted(sizes) and qualities == sorted(qualities)
    assert qualities[0] > psnr(original, base) and qualities[-1] > 40


def test_malformed_payloads_raise_invalid_bitstream(pair) -> None:
    original, base = pair
    payload = refinement.encode(refinement.ResidualTransform.of(original, base).trial(4.0))
    for bad in (
        b"",
        payload[:2],
        b"\x00\x00" + payload[2:],
        payload[:2] + b"\x04" + payload[3:],
        payload[:6],
        payload[:3] + struct.pack(">I", len(payload)) + payload[7:],  # a first stream longer than the payload
        payload[:-1],
    ):
        with pytest.raises(InvalidBitstream):
            refinement.decode(base, bad, REFINED_FORMAT_VERSION)


def test_corrupt_or_foreign_payloads_decode_to_an_image_or_raise_invalid_bitstream(pair) -> None:
    """The range coder's bytes carry no check of their own (the bitstream's CRC does): whatever they
    hold, decoding ends in an image of the base's size or in ``InvalidBitstream``, nothing else."""
    original, base = pair
    payload = refinement.encode(refinement.ResidualTransform.of(original, base).trial(4.0))
    flips = [payload[:i] + bytes([payload[i] ^ 0x5A]) + payload[i + 1 :] for i in range(2, len(payload), 9)]
    foreign = [(np.zeros((200, 300, 3), np.uint8), payload, 6), (base, payload, 4), (base, payload, 3)]
    cases = [(base, bad, 6) for bad in [*flips, payload[:2] + b"junk" * 10, payload[:-4]]] + foreign
    for image, bad, version in cases:
        try:
            decoded = refinement.decode(image, bad, version)
        except InvalidBitstream:
            continue
        assert decoded.shape == image.shape and decoded.dtype == np.uint8


def test_the_deblocking_filter_smooths_quantisation_edges_and_keeps_the_picture_s(pair) -> None:
    """At a coarse step, block edges in the decoded image step less than without the filter, and the
    filter brings the image closer to the original."""
    original, _ = pair
    grey = np.full_like(original, 128)
    trial = refinement.ResidualTransform.of(original, grey).trial(24.0)
    without = dataclasses.replace(refinement._LAYOUTS[REFINED_FORMAT_VERSION][1], deblock=False)
    plain = refinement._reconstruct(grey, trial.quantised, trial.step, without)

    def edge_steps(image: np.ndarray) -> float:
        columns = np.arange(8, image.shape[1] - 1, 8)
        values = image.astype(np.int16)
        return float(np.abs(values[:, columns] - values[:, columns - 1]).mean())

    assert edge_steps(trial.image) < 0.9 * edge_steps(plain)
    assert psnr(original, trial.image) > psnr(original, plain)


def test_working_in_bands_gives_what_one_band_gives(pair, monkeypatch) -> None:
    """The transform, quantiser and reconstruction run band by band (bounded memory on big photos);
    the band height changes nothing."""
    original, base = pair
    results = []
    for rows in (2, 3, 10_000):  # 16- and 24-pixel bands (the last one cut), and one band
        monkeypatch.setattr(refinement, "_STRIP_BLOCKS", rows)
        transform = refinement.ResidualTransform.of(original, base)
        trial = transform.trial(5.0)
        results.append((transform.coefficients, trial.quantised, trial.image))
    for banded in results[:2]:
        for a, b in zip(banded, results[2], strict=True):
            np.testing.assert_array_equal(a, b)


def test_gradients_come_out_as_ramps_not_block_steps() -> None:
    """A smooth diagonal gradient at a step that codes its ramps as zero: without the ramps (format 5)
    the 8×8 blocks show as steps; formats 6 and 7 put back the ramps the neighbouring means show."""
    y, x = np.mgrid[:64, :96]
    original = np.repeat((60 + 0.9 * x + 0.5 * y)[..., None], 3, axis=2).round().astype(np.uint8)
    base = np.full_like(original, 128)
    trial = refinement.ResidualTransform.of(original, base).trial(40.0)
    assert not trial.quantised[..., 0, 1].any() and not trial.quantised[..., 1, 0].any()
    without = dataclasses.replace(refinement._LAYOUTS[REFINED_FORMAT_VERSION][1], ramps=False)
    old = refinement._reconstruct(base, trial.quantised, trial.step, without)
    for image in (old, trial.image):  # every block keeps its mean, within a step of the mean (2.5)
        assert np.abs((image.astype(float) - original).reshape(8, 8, 12, 8, 3).mean((1, 3))).max() < 2.5
    # the original rises 0.9 per column: a staircase of flat blocks repeats values far more often
    flat = lambda image: (np.diff(image.astype(int), axis=1) == 0).mean()  # noqa: E731
    assert flat(original) < 0.15 and flat(old) > 0.5 and flat(trial.image) < 0.35
    assert psnr(original, trial.image) > psnr(original, old) + 2


def test_coarse_steps_keep_the_block_means_at_the_step_48_gives(monkeypatch) -> None:
    """Format 7: past step 48 the AC steps keep growing, the block means' does not, so a flat area at a
    coarse step keeps its colour (format 6 would put it up to half a mean step, 4 levels, off)."""
    layout, older = refinement._LAYOUTS[REFINED_FORMAT_VERSION][1], refinement._LAYOUTS[6][1]
    np.testing.assert_array_equal(layout.steps(128.0)[:, 0, 0], layout.steps(48.0)[:, 0, 0])
    np.testing.assert_array_equal(layout.steps(128.0)[:, 1:], older.steps(128.0)[:, 1:])
    np.testing.assert_array_equal(layout.steps(40.0), older.steps(40.0))
    original = np.empty((64, 64, 3), np.uint8)
    original[:] = 133  # 5 levels above the base: 3 off on a mean step of 8, 1 off on one of 3
    transform = refinement.ResidualTransform.of(original, np.full_like(original, 128))
    assert np.abs(transform.trial(128.0).image.astype(int) - original).max() <= 2
    uncapped = tuple(dataclasses.replace(older, adaptive=True) for _ in range(4))  # a flat area: all level 0
    monkeypatch.setitem(refinement._LAYOUTS, REFINED_FORMAT_VERSION, uncapped)
    assert np.abs(transform.trial(128.0).image.astype(int) - original).max() > 2


def test_the_adaptive_quantiser_steps_coarser_where_the_picture_is_busy() -> None:
    """Format 7 for MS-SSIM targets: a busy region's steps are coarser than a smooth one's (MS-SSIM
    forgives texture more error); the levels travel in the payload, and one out of range is refused."""
    rng = np.random.default_rng(7)
    original = np.full((64, 128, 3), 120, np.uint8)
    original[:, 64:] = rng.integers(40, 200, (64, 64, 3))  # noise on the right, flat on the left
    base = np.full_like(original, 128)
    trial = refinement.ResidualTransform.of(original, base).trial(20.0)
    assert trial.levels is not None and trial.levels.shape == (2, 4)
    assert (trial.levels[:, :2] < 0).all() and (trial.levels[:, 2:] > 0).all()
    np.testing.assert_array_equal(
        refinement.decode(base, refinement.encode(trial), refinement.FORMAT), trial.image
    )
    levels = trial.levels.copy()
    levels[0, 0] = 5
    means, rest = coefficient_coder.encode(trial.quantised, levels, trained=True)
    forged = refinement.encode(trial)[:3] + struct.pack(">I", len(means)) + means + rest
    with pytest.raises(InvalidBitstream, match="level"):
        refinement.decode(base, forged, 7)


def test_the_first_of_the_layers_two_steps_is_its_block_means_with_their_ramps(pair) -> None:
    """Format 7's payload cut to its first stream (the levels and block means) is a payload of one step
    that decodes to the means alone (every other coefficient zero, the ramps predicted from the means)."""
    original, base = pair
    trial = refinement.ResidualTransform.of(original, base).trial(6.0)
    payload = refinement.encode(trial)
    first = refinement.first_step(payload)
    assert refinement.steps(payload, 7) == 2 and refinement.steps(first, 7) == 1
    assert refinement.steps(payload, 6) == 1 and len(first) < len(payload)
    means = np.zeros_like(trial.quantised)
    means[..., 0, 0] = trial.quantised[..., 0, 0]
    layout = refinement._LAYOUTS[7][trial.mode]
    scales = refinement._block_scales(trial.levels, *trial.quantised.shape[1:3])
    preview = refinement.decode(base, first, 7)
    np.testing.assert_array_equal(preview, refinement._reconstruct(base, means, trial.step, layout, scales))
    assert psnr(original, base) < psnr(original, preview) < psnr(original, trial.image)


@pytest.mark.parametrize("aim", ["msssim", "psnr"])
def test_payloads_coded_from_flat_counts_still_decode(pair, aim: str) -> None:
    """Payloads written before mode bit 2 (the coefficient coder's trained counts) decode as they did;
    those written now carry the bit and are smaller."""
    original, base = pair
    trial = refinement.ResidualTransform.of(original, base, aim).trial(12.0)
    now = refinement.encode(trial)
    assert now[2] == trial.mode | 4
    means, rest = coefficient_coder.encode(trial.quantised, trial.levels)
    before = struct.pack(">HBI", round(trial.step * 64), trial.mode, len(means)) + means + rest
    assert len(now) < len(before)
    for payload in (now, before):
        np.testing.assert_array_equal(refinement.decode(base, payload, refinement.FORMAT), trial.image)


@pytest.mark.parametrize("msssim", [True, False])
def test_the_dead_zone_keeps_low_bands_for_msssim_and_is_flat_for_psnr(msssim: bool) -> None:
    """The encoder's rounding: for MS-SSIM targets a low band's coefficient just above half its step is
    kept and a high band's well above it is dropped; for PSNR targets both round the same way."""
    base = np.full((8, 8, 3), 128, np.uint8)
    transform = refinement.ResidualTransform.of(base, base, "msssim" if msssim else "psnr")
    layout = refinement._LAYOUTS[refinement.FORMAT][transform.mode]
    step = 10.0
    steps = layout.steps(step) * refinement._block_scales(transform.levels, 1, 1)[0, 0]
    coefficients = np.zeros_like(transform.coefficients)
    coefficients[0, 0, 0, 0, 1] = 0.55 * steps[0, 0, 1]  # next to the DC
    coefficients[0, 0, 0, 7, 7] = 0.75 * steps[0, 7, 7]  # the highest band
    quantised = dataclasses.replace(transform, coefficients=coefficients).trial(step).quantised[0, 0, 0]
    assert (quantised[0, 1], quantised[7, 7]) == ((1, 0) if msssim else (0, 1))


def test_perceptual_weights_quantise_chroma_and_high_bands_coarser() -> None:
    """SSIMULACRA 2's layout: chroma 2.5 times luma's step (its block means 1.5 times), steps rising
    twice as fast with frequency as the other layouts'."""
    perceptual = refinement._LAYOUTS[refinement.FORMAT][refinement.MODES["ssimulacra2"]]
    plain = refinement._LAYOUTS[refinement.FORMAT][refinement.MODES["psnr"]]
    assert perceptual.adaptive and perceptual.weights[1, 3, 3] == pytest.approx(
        2.5 * perceptual.weights[0, 3, 3]
    )
    assert perceptual.weights[1, 0, 0] == pytest.approx(1.5)
    assert perceptual.weights[0, 7, 7] > plain.weights[0, 7, 7]


def test_an_undefined_mode_is_a_clear_error(pair) -> None:
    original, base = pair
    payload = bytearray(refinement.encode(refinement.ResidualTransform.of(original, base, "psnr").trial(8.0)))
    payload[2] = 4 | 8 | 1  # the perceptual weights with finer means: never written
    with pytest.raises(InvalidBitstream, match="mode"):
        refinement.decode(base, bytes(payload), refinement.FORMAT)
