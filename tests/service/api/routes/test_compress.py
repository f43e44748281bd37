"""POST /compress over real HTTP against the embedded backend."""

import io

import httpx
import numpy as np
import pytest
from PIL import Image

from service.codec.quality import msssim, ssimulacra2


def _png(rgb: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def compressed(http: httpx.Client, kodak_image: np.ndarray) -> dict:
    response = http.post(
        "/compress", files={"image": ("k.png", _png(kodak_image), "image/png")}, data={"msssim": "0.8"}
    )
    assert response.status_code == 200, response.text
    return response.json()


def test_report_is_measured_on_what_the_receiver_decodes(
    http: httpx.Client, compressed: dict, kodak_image: np.ndarray
) -> None:
    assert (compressed["width"], compressed["height"]) == (768, 512)
    decoded = http.get(compressed["urls"]["decompress"])
    assert decoded.status_code == 200 and decoded.headers["content-type"] == "image/png"
    image = np.asarray(Image.open(io.BytesIO(decoded.content)).convert("RGB"))
    assert image.shape == kodak_image.shape
    assert msssim(kodak_image, image) == pytest.approx(compressed["msssim"], abs=1e-3)
    assert compressed["target"]["met"] is (compressed["msssim"] >= 0.8)
    assert compressed["bpp"] == pytest.approx(8 * compressed["bytes"] / (768 * 512))


def test_stored_bitstream_matches_the_report(http: httpx.Client, compressed: dict) -> None:
    stored = http.get(compressed["urls"]["bitstream"])
    assert stored.status_code == 200 and len(stored.content) == compressed["bytes"]
    info = http.get(compressed["urls"]["bitstream"] + "/info").json()
    assert info["iterations"]["max"] == compressed["iterations"]
    assert info["model"] == compressed["model"]


def test_content_negotiation(http: httpx.Client, kodak_image: np.ndarray) -> None:
    small = kodak_image[:128, :192]
    files = {"image": ("k.png", _png(small), "image/png")}
    raw = http.post(
        "/compress", files=files, data={"bpp": "0.5"}, headers={"Accept": "application/octet-stream"}
    )
    assert raw.status_code == 200 and raw.content[:4] == b"RGIC"
    assert float(raw.headers["X-RGIC-BPP"]) <= 0.5
    png = http.post("/compress", files=files, data={"bpp": "0.5"}, headers={"Accept": "image/png"})
    assert png.status_code == 200 and png.content[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.headers["X-RGIC-Id"] == raw.headers["X-RGIC-Id"]  # same bits, same content id


@pytest.mark.parametrize(("target", "key"), [({"psnr": "20"}, "psnr"), ({"bpp": "0.3"}, "bpp")])
def test_each_target_kind(http: httpx.Client, kodak_image: np.ndarray, target: dict, key: str) -> None:
    files = {"image": ("k.png", _png(kodak_image[:256, :256]), "image/png")}
    body = http.post("/compress", files=files, data=target).json()
    assert body["target"]["kind"] == key
    if key == "bpp":
        assert body["bpp"] <= 0.3 and body["target"]["met"]
    else:
        assert body["target"]["met"] is (body["psnr"] >= 20)


@pytest.mark.parametrize(
    ("fields", "score"), [({"ssimulacra2": "30"}, 30.0), ({}, 70.0), ({"quality": "high"}, 70.0)]
)
def test_perceptual_targets_and_the_default_are_met_on_what_the_receiver_decodes(
    http: httpx.Client, kodak_image: np.ndarray, fields: dict, score: float
) -> None:
    rgb = np.ascontiguousarray(kodak_image[:256, :384])
    files = {"image": ("k.png", _png(rgb), "image/png")}
    answer = http.post("/compress", files=files, data=fields, headers={"Accept": "image/png"})
    assert answer.status_code == 200, answer.text
    decoded = np.asarray(Image.open(io.BytesIO(answer.content)).convert("RGB"))
    measured = ssimulacra2(rgb, decoded)
    assert measured >= score and float(answer.headers["X-RGIC-SSIMULACRA2"]) == pytest.approx(
        measured, abs=1e-3
    )
    assert answer.headers["X-RGIC-Target-Met"] == "true"
    assert answer.headers["X-RGIC-Coder"] in ("network", "layer", "network+layer")
    stored = http.get(f"/decompress/{answer.headers['X-RGIC-Id']}")
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(stored.content)).convert("RGB")), decoded)


def test_two_targets_or_an_unknown_level_are_refused(http: httpx.Client, kodak_image: np.ndarray) -> None:
    files = {"image": ("k.png", _png(kodak_image[:64, :64]), "image/png")}
    both = http.post("/compress", files=files, data={"ssimulacra2": "50", "msssim": "0.9"})
    assert both.status_code == 400 and "one target" in both.json()["error"]["message"]
    unknown = http.post("/compress", files=files, data={"quality": "superb"})
    assert unknown.status_code == 400 and "low" in unknown.json()["error"]["message"]


@pytest.mark.parametrize("size", [(1, 1), (13, 7), (300, 3)])
def test_odd_sizes_come_back_exactly(http: httpx.Client, size: tuple[int, int]) -> None:
    width, height = size
    rgb = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    body = http.post(
        "/compress", files={"image": ("x.png", _png(rgb), "image/png")}, data={"bpp": "24"}
    ).json()
    image = Image.open(io.BytesIO(http.get(body["urls"]["decompress"]).content))
    assert image.size == (width, height)


def test_an_exact_reconstruction_reports_no_psnr(http: httpx.Client) -> None:
    """A flat image at a PSNR past the network comes back exactly from the refinement layer: its PSNR is
    infinite, which JSON cannot say, so the report and its ladder give null (and the header says inf)."""
    flat = _png(np.zeros((16, 16, 3), np.uint8))
    form = {"psnr": "60"}
    body = http.post("/compress", files={"image": ("x.png", flat, "image/png")}, data=form).json()
    assert body["psnr"] is None and body["msssim"] == pytest.approx(1.0) and body["target"]["met"]
    assert body["coder"] == "layer" and body["ladder"][-1]["psnr"] is None
    headers = http.post(
        "/compress", files={"image": ("x.png", flat, "image/png")}, data=form, headers={"Accept": "image/png"}
    ).headers
    assert headers["X-RGIC-PSNR"] == "inf"


@pytest.mark.parametrize(
    ("rows", "columns", "below"),
    [
        (slice(100, 292), slice(300, 556), "per-patch"),  # the network's, mixed counts: cut per patch
        (slice(0, 256), slice(0, 768), "alternate"),  # the layer's alone: network bitstreams beside it
    ],
)
def test_a_stored_bitstream_answers_its_smallest_rung_meeting_a_lower_quality(
    http: httpx.Client, kodak_image: np.ndarray, rows: slice, columns: slice, below: str
) -> None:
    rgb = np.ascontiguousarray(kodak_image[rows, columns])
    made = http.post("/compress", files={"image": ("k.png", _png(rgb), "image/png")}, data={"msssim": "0.95"})
    assert made.status_code == 200, made.text
    report = made.json()
    ladder = report["ladder"]
    assert ladder[-1]["bytes"] == report["bytes"] and len(ladder) >= 2
    url = report["urls"]["bitstream"]
    cuts = set()
    lower = [r["msssim"] for r in ladder if r["cut"] == below]
    assert lower
    for wanted in (0.85, 0.9, 0.93, *lower):
        answer = http.get(url, params={"msssim": wanted})
        assert answer.status_code == 200, answer.text
        rung = next(r for r in ladder if r["bytes"] == len(answer.content))
        assert (rung["steps"], rung["cut"]) == (
            int(answer.headers["x-rgic-steps"]),
            answer.headers["x-rgic-cut"],
        )
        assert rung["msssim"] >= wanted and rung["bytes"] <= report["bytes"]
        smaller = [r for r in ladder if r["bytes"] < rung["bytes"]]
        assert all(r["msssim"] < wanted for r in smaller)  # the smallest rung meeting it
        cuts.add(rung["cut"])
        decoded = http.post(
            "/decompress", content=answer.content, headers={"content-type": "application/octet-stream"}
        )
        assert decoded.status_code == 200, decoded.text
        image = np.asarray(Image.open(io.BytesIO(decoded.content)).convert("RGB"))
        assert msssim(rgb, image) >= wanted
    assert cuts == {"prefix", below}
    by_size = http.get(url, params={"bytes": ladder[0]["bytes"]})
    assert by_size.status_code == 200 and len(by_size.content) == ladder[0]["bytes"]
    too_high = http.get(url, params={"msssim": 0.999})
    assert too_high.status_code == 422 and too_high.json()["error"]["code"] == "not_in_ladder"
    both = http.get(url, params={"msssim": 0.9, "bytes": 1000})
    assert both.status_code == 400
    assert http.get(url + "/info").json()["ladder"] == ladder
