"""SSIMULACRA 2 against libjxl's own scores (../shared/ssimulacra2/reference.json)."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from model_export import ssimulacra2
from service.codec.quality import ssimulacra2_batch
from service.settings import PROJECT_ROOT

REFERENCE = PROJECT_ROOT.parent / "shared" / "ssimulacra2"
CASES = json.loads((REFERENCE / "reference.json").read_text())


def _rgb(name: str) -> np.ndarray:
    return np.asarray(Image.open(REFERENCE / name).convert("RGB"))


def _lcg_noise(side: int) -> np.ndarray:
    """The recipe's noise: a 64-bit LCG from seed 42, byte = (state >> 33) & 255, row-major RGB."""
    state, values = 42, []
    for _ in range(side * side * 3):
        state = (state * 6364136223846793005 + 1442695040888963407) % 2**64
        values.append((state >> 33) & 255)
    return np.array(values, np.uint8).reshape(side, side, 3)


def _synthetic(name: str) -> tuple[np.ndarray, np.ndarray]:
    """The source and distorted image a synthetic case's recipe describes."""
    if name.startswith("uniform_shift_"):
        _, _, shift, size = name.split("_")
        side = int(size.split("x")[0])
        return np.full((side, side, 3), 128, np.uint8), np.full((side, side, 3), 128 + int(shift), np.uint8)
    grey = np.full((64, 64, 3), 128, np.uint8)
    if name == "gradient_vs_uniform_64x64":
        ramp = (np.arange(64) * 255 // 63).astype(np.uint8)
        return np.broadcast_to(ramp[None, :, None], (64, 64, 3)).copy(), grey
    assert name == "noise_vs_uniform_64x64"
    return _lcg_noise(64), grey


@pytest.mark.parametrize("case", CASES["files"], ids=lambda c: c["distorted"])
def test_matches_libjxl_on_jpeg_photo(case: dict) -> None:
    source, distorted = _rgb(case["source"]), _rgb(case["distorted"])
    assert abs(ssimulacra2.score(source, distorted) - case["score"]) <= 0.5


@pytest.mark.parametrize("case", CASES["synthetic"], ids=lambda c: c["name"])
def test_matches_libjxl_on_synthetic_pairs(case: dict) -> None:
    source, distorted = _synthetic(case["name"])
    assert abs(ssimulacra2.score(source, distorted) - case["score"]) <= 2.0


def test_identical_images_score_100_and_scores_fall_with_quality() -> None:
    source = _rgb("source.png")
    assert ssimulacra2_batch(source, source[None])[0] == 100.0
    assert ssimulacra2.score(source, source) > 99.9  # the training graph's floor under the 4th root
    scores = []
    for quality in (10, 40, 90):
        buffer = io.BytesIO()
        Image.fromarray(source).save(buffer, "JPEG", quality=quality)
        scores.append(ssimulacra2.score(source, np.asarray(Image.open(buffer))))
    assert scores == sorted(scores) and scores[0] < 50 < scores[-1]


def test_service_pieces_equal_the_whole_image() -> None:
    """The gateway's piecewise sums (images past 768 px a side) give the whole image's score."""
    photo = _rgb("source.png")
    big = np.tile(photo, (4, 5, 1))[:1000, :1210]
    buffer = io.BytesIO()
    Image.fromarray(big).save(buffer, "JPEG", quality=30)
    distorted = np.asarray(Image.open(buffer))
    pieces = ssimulacra2_batch(big, np.stack([distorted, big]))
    assert pieces[0] == pytest.approx(ssimulacra2.score(big, distorted), abs=0.01)
    assert pieces[1] == 100.0


def test_small_images_have_no_score_in_the_service() -> None:
    tiny = np.zeros((7, 40, 3), np.uint8)
    assert np.isnan(ssimulacra2_batch(tiny, tiny[None])[0])


def test_gradient_flows_to_the_distorted_image() -> None:
    source = tf.constant(_rgb("source.png")[None, :64, :64], tf.float32)
    distorted = tf.Variable(source + tf.random.stateless_normal(source.shape, [1, 2], stddev=8.0))
    with tf.GradientTape() as tape:
        value = ssimulacra2.scores(source, distorted)[0]
    gradient = tape.gradient(value, distorted)
    assert np.all(np.isfinite(gradient.numpy())) and float(tf.reduce_max(tf.abs(gradient))) > 0
