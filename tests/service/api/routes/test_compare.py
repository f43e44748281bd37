"""POST /compare over real HTTP: ours and JPEG, WebP and AVIF at no more bytes, and its errors."""

from __future__ import annotations

import io

import httpx
import numpy as np
import pytest
from PIL import Image

from service.codec.quality import msssim
from service.comparison.classic import CLASSIC_CODECS
from service.main import create_app
from tests.conftest import LiveServer, gateway_settings
from tests.service.api.routes.test_compress import _png
from tests.service.api.routes.test_jobs import ASYNC, _wait


@pytest.fixture(scope="module")
def compared(http: httpx.Client, kodak_image: np.ndarray) -> dict:
    rgb = kodak_image
    # whichever coder is smaller makes it: a step per network iteration, or the layer's two
    response = http.post("/compare", files={"image": ("k.png", _png(rgb))}, data={"msssim": "0.93"})
    assert response.status_code == 200, response.text
    return {"rgb": rgb, **response.json()}


def test_each_classic_codec_is_at_most_our_size_and_measured_on_its_file(
    http: httpx.Client, compared: dict
) -> None:
    ours = compared["ours"]
    assert ours["target"]["met"] and ours["bytes"] > 0
    assert [c["codec"] for c in compared["classic"]] == list(CLASSIC_CODECS)
    for entry in compared["classic"]:
        assert entry["fits"], entry
        assert entry["bytes"] <= ours["bytes"] and 0 <= entry["quality"] <= 100
        image = http.get(entry["url"])
        assert image.status_code == 200
        assert image.headers["content-type"] == CLASSIC_CODECS[entry["codec"]].media_type
        assert len(image.content) == entry["bytes"]
        decoded = np.asarray(Image.open(io.BytesIO(image.content)).convert("RGB"))
        assert msssim(compared["rgb"], decoded) == pytest.approx(entry["msssim"], abs=1e-6)


def test_progressive_steps_grow_to_the_whole_bitstream(http: httpx.Client, compared: dict) -> None:
    steps, ours = compared["steps"], compared["ours"]
    layer_steps = 2 if ours["refinement_bytes"] else 0  # format 7: the block means, then the rest
    assert [s["iterations"] for s in steps] == list(range(1, ours["iterations"] + layer_steps + 1))
    assert [s["refinement"] for s in steps] == [s["iterations"] > ours["iterations"] for s in steps]
    ladder = [(rung["steps"], rung["bytes"]) for rung in ours["ladder"] if rung["cut"] == "prefix"]
    assert [(s["iterations"], s["bytes"]) for s in steps] == ladder
    sizes = [s["bytes"] for s in steps]
    assert sizes == sorted(sizes) and sizes[-1] == compared["ours"]["bytes"]
    first = http.get(steps[0]["url"])
    assert first.status_code == 200 and first.headers["content-type"] == "image/png"
    image = np.asarray(Image.open(io.BytesIO(first.content)).convert("RGB"))
    assert image.shape == compared["rgb"].shape
    last = http.get(steps[-1]["url"]).content
    assert last == http.get(compared["ours"]["urls"]["decompress"]).content


def test_async_compare_reports_progress_and_the_same_result(http: httpx.Client, compared: dict) -> None:
    accepted = http.post(
        "/compare", files={"image": ("k.png", _png(compared["rgb"]))}, data={"msssim": "0.93"}, headers=ASYNC
    )
    assert accepted.status_code == 202
    state, seen = _wait(http, accepted.headers["Location"])
    assert state["status"] == "done"
    assert any(stage.endswith("at our size") for stage, _ in seen)  # the classic codecs' stage was seen
    assert state["result"]["ours"]["id"] == compared["ours"]["id"]
    assert [c["bytes"] for c in state["result"]["classic"]] == [c["bytes"] for c in compared["classic"]]


def test_compare_errors_are_those_of_compress(http: httpx.Client) -> None:
    not_image = http.post("/compare", files={"image": ("x.txt", b"hello")})
    assert not_image.status_code == 415 and not_image.json()["error"]["code"] == "unsupported_image"
    two = http.post(
        "/compare",
        files={"image": ("x.png", _png(np.zeros((8, 8, 3), np.uint8)))},
        data={"msssim": "0.9", "bpp": "1"},
    )
    assert two.status_code == 400
    accepted = http.post("/compare", files={"image": ("x.txt", b"hello")}, headers=ASYNC)
    state, _ = _wait(http, accepted.headers["Location"])
    assert state["status"] == "failed" and state["http_status"] == 415
    assert state["error"] == not_image.json()["error"]


def test_images_over_the_compare_limit_get_413(backend_address: str, tmp_path) -> None:
    settings = gateway_settings(backend_address, tmp_path, compare_max_pixels=10_000)
    with LiveServer(create_app(settings)) as live, httpx.Client(base_url=live.url, timeout=60) as client:
        big = client.post("/compare", files={"image": ("b.png", _png(np.zeros((120, 100, 3), np.uint8)))})
        assert big.status_code == 413 and "12000" in big.json()["error"]["message"]


def test_unknown_and_non_image_ids_are_404(http: httpx.Client, compared: dict) -> None:
    assert http.get("/images/" + "0" * 64).status_code == 404
    assert http.get("/images/" + compared["ours"]["id"]).status_code == 404  # a bitstream, not an image
