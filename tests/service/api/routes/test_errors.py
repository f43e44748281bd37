"""Every documented error status, produced by a real bad request."""

import io

import httpx
import numpy as np
import pytest
from PIL import Image

from service.main import create_app
from tests.conftest import LiveServer, free_port, gateway_settings
from tests.service.api.routes.test_compress import _png

SMALL = _png(np.zeros((16, 16, 3), np.uint8))


def _error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    assert response.json()["error"]["message"]


def test_400_bad_parameters(http: httpx.Client) -> None:
    files = {"image": ("x.png", SMALL, "image/png")}
    _error(http.post("/compress", files=files, data={"msssim": "0.9", "bpp": "1"}), 400, "bad_parameter")
    _error(http.post("/compress", files=files, data={"msssim": "2"}), 400, "bad_parameter")
    _error(http.post("/compress", files=files, data={"psnr": "lots"}), 400, "bad_parameter")
    _error(http.post("/compress", data={"msssim": "0.9"}), 400, "bad_parameter")


def test_404_unknown_id(http: httpx.Client) -> None:
    _error(http.get("/decompress/" + "0" * 64), 404, "not_found")
    _error(http.get("/bitstreams/..%2F..%2Fetc%2Fpasswd"), 404, "not_found")


def test_413_too_large(backend_address: str, tmp_path) -> None:
    settings = gateway_settings(backend_address, tmp_path, max_upload_bytes=1000, max_pixels=100)
    with LiveServer(create_app(settings)) as live, httpx.Client(base_url=live.url) as client:
        big = bytes(5000)
        _error(
            client.post("/compress", files={"image": ("x.png", big, "image/png")}), 413, "payload_too_large"
        )
        bomb = io.BytesIO()
        Image.new("L", (11, 11)).save(bomb, format="PNG")
        _error(
            client.post("/compress", files={"image": ("x.png", bomb.getvalue(), "image/png")}),
            413,
            "payload_too_large",
        )


def test_415_not_an_image(http: httpx.Client) -> None:
    _error(
        http.post("/compress", files={"image": ("x.txt", b"hello", "text/plain")}), 415, "unsupported_image"
    )
    _error(
        http.post("/compress", files={"image": ("x.png", SMALL[:40], "image/png")}), 415, "unsupported_image"
    )


@pytest.mark.parametrize("body", [b"", b"RGIC", b"garbage" * 10])
def test_422_invalid_bitstream(http: httpx.Client, body: bytes) -> None:
    _error(http.post("/decompress", content=body), 422, "invalid_bitstream")


def test_422_names_a_model_version_the_backend_does_not_serve(http: httpx.Client) -> None:
    from service.codec.bitstream import Bitstream

    raw = http.post(
        "/compress",
        files={"image": ("x.png", SMALL, "image/png")},
        data={"bpp": "24"},
        headers={"Accept": "application/octet-stream"},
    ).content
    stream = Bitstream.from_bytes(raw)
    foreign = Bitstream(**{**stream.__dict__, "model_version": 4242}).to_bytes()
    response = http.post("/decompress", content=foreign)
    _error(response, 422, "model_version_not_served")
    assert "4242" in response.json()["error"]["message"]


def test_503_backend_unavailable_with_retry_after(tmp_path) -> None:
    settings = gateway_settings(f"127.0.0.1:{free_port()}", tmp_path, backend_timeout_seconds=1)
    with LiveServer(create_app(settings)) as live, httpx.Client(base_url=live.url, timeout=30) as client:
        response = client.post("/compress", files={"image": ("x.png", SMALL, "image/png")})
        _error(response, 503, "backend_unavailable")
        assert int(response.headers["Retry-After"]) > 0
        assert client.get("/readyz").status_code == 503
        assert client.get("/healthz").status_code == 200
