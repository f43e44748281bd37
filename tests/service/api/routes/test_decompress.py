"""GET/POST /decompress, progressive streams, over real HTTP."""

import io
import itertools

import httpx
import numpy as np
import pytest
from PIL import Image

from service.codec.bitstream import Bitstream
from service.codec.quality import msssim
from tests.service.api.routes.test_compress import _png


@pytest.fixture(scope="module")
def bitstream(http: httpx.Client, kodak_image: np.ndarray) -> bytes:
    response = http.post(
        "/compress",
        files={"image": ("k.png", _png(kodak_image), "image/png")},
        data={"bpp": "0.6"},
        headers={"Accept": "application/octet-stream"},
    )
    assert response.status_code == 200
    return response.content


def _frames(body: bytes, boundary: str) -> list[np.ndarray]:
    frames = []
    for part in body.split(f"--{boundary}".encode())[1:-1]:
        head, _, png = part.partition(b"\r\n\r\n")
        assert b"image/png" in head
        frames.append(np.asarray(Image.open(io.BytesIO(png[:-2])).convert("RGB")))
    return frames


def test_post_decompress_decodes_a_held_bitstream(http: httpx.Client, bitstream: bytes, kodak_image) -> None:
    response = http.post(
        "/decompress", content=bitstream, headers={"Content-Type": "application/octet-stream"}
    )
    assert response.status_code == 200
    image = np.asarray(Image.open(io.BytesIO(response.content)).convert("RGB"))
    assert image.shape == kodak_image.shape


def test_progressive_frames_improve_and_end_at_the_full_decode(
    http: httpx.Client, bitstream: bytes, kodak_image
) -> None:
    response = http.post("/decompress?progressive=true", content=bitstream)
    assert response.status_code == 200
    content_type = response.headers["content-type"]
    assert content_type.startswith("multipart/x-mixed-replace")
    frames = _frames(response.content, content_type.split("boundary=")[1])
    assert len(frames) == Bitstream.from_bytes(bitstream).patch_iterations.max() > 1
    scores = [msssim(kodak_image, f) for f in frames]
    assert all(b > a for a, b in itertools.pairwise(scores)), scores
    full = np.asarray(
        Image.open(io.BytesIO(http.post("/decompress", content=bitstream).content)).convert("RGB")
    )
    np.testing.assert_array_equal(frames[-1], full)


def test_iterations_decodes_what_a_progressive_receiver_shows_then(
    http: httpx.Client, bitstream: bytes
) -> None:
    response = http.post("/decompress?progressive=true", content=bitstream)
    frames = _frames(response.content, response.headers["content-type"].split("boundary=")[1])
    k = 2
    cut = http.post(f"/decompress?iterations={k}", content=bitstream)
    assert cut.status_code == 200
    np.testing.assert_array_equal(
        np.asarray(Image.open(io.BytesIO(cut.content)).convert("RGB")), frames[k - 1]
    )
    streamed = http.post(f"/decompress?iterations={k}&progressive=true", content=bitstream)
    first_k = _frames(streamed.content, streamed.headers["content-type"].split("boundary=")[1])
    assert len(first_k) == k
    np.testing.assert_array_equal(first_k[-1], frames[k - 1])
    refused = http.post("/decompress?iterations=0", content=bitstream)
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "bad_parameter"
