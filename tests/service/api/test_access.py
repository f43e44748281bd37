"""API keys, CORS, and quick 503s when the service is at capacity."""

from __future__ import annotations

import concurrent.futures
import time

import httpx
import numpy as np

from service.main import create_app
from tests.conftest import LiveServer, gateway_settings
from tests.service.api.routes.test_compress import _png

SMALL = _png(np.zeros((16, 16, 3), np.uint8))


def test_api_keys_guard_compress_and_decompress(backend_address: str, tmp_path) -> None:
    settings = gateway_settings(backend_address, tmp_path, api_keys=["s3cret"])
    with LiveServer(create_app(settings)) as live, httpx.Client(base_url=live.url, timeout=60) as client:
        files = {"image": ("x.png", SMALL, "image/png")}
        assert client.post("/compress", files=files).status_code == 401
        assert (
            client.post("/compress", files=files, headers={"Authorization": "Bearer nope"}).status_code == 401
        )
        ok = client.post("/compress", files=files, headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200
        assert client.get(ok.json()["urls"]["decompress"]).json()["error"]["code"] == "unauthorized"
        assert (
            client.get(
                ok.json()["urls"]["decompress"], headers={"Authorization": "Bearer s3cret"}
            ).status_code
            == 200
        )
        assert client.get("/healthz").status_code == 200  # probes stay open


def test_cors_allows_configured_origins_only(backend_address: str, tmp_path) -> None:
    settings = gateway_settings(backend_address, tmp_path, cors_origins=["https://app.example"])
    with LiveServer(create_app(settings)) as live, httpx.Client(base_url=live.url) as client:
        preflight = {"Origin": "https://app.example", "Access-Control-Request-Method": "POST"}
        allowed = client.options("/compress", headers=preflight)
        assert allowed.headers["access-control-allow-origin"] == "https://app.example"
        refused = client.options("/compress", headers={**preflight, "Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in refused.headers


def test_overload_answers_503_quickly_instead_of_queueing(
    backend_address: str, tmp_path, kodak_image
) -> None:
    settings = gateway_settings(backend_address, tmp_path, max_concurrent_requests=1)  # queue bound: 2
    body = _png(kodak_image)
    with LiveServer(create_app(settings)) as live:

        def one() -> tuple[int, float, str]:
            start = time.perf_counter()
            with httpx.Client(base_url=live.url, timeout=120) as client:
                r = client.post(
                    "/compress", files={"image": ("k.png", body, "image/png")}, data={"bpp": "0.3"}
                )
                return r.status_code, time.perf_counter() - start, r.headers.get("Retry-After", "")

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            results = list(pool.map(lambda _: one(), range(8)))
    statuses = [s for s, _, _ in results]
    assert set(statuses) <= {200, 503} and statuses.count(200) >= 1 and statuses.count(503) >= 1, statuses
    slowest_refusal = max(t for s, t, _ in results if s == 503)
    fastest_success = min(t for s, t, _ in results if s == 200)
    assert slowest_refusal < fastest_success  # refused at once, not after waiting in a queue
    assert all(retry for s, _, retry in results if s == 503)


def test_pixels_in_flight_are_bounded_by_the_budget(backend_address: str, tmp_path, kodak_image) -> None:
    """Two big images at once pass the pixel budget: one is coded, the other refused with 503 at once;
    small ones still pass beside the big one; every 200's bitstream decodes."""
    big, small = kodak_image, kodak_image[:64, :64]
    budget = big.shape[0] * big.shape[1] + 2 * 64 * 64
    settings = gateway_settings(
        backend_address, tmp_path, max_concurrent_requests=4, max_pixels_in_flight=budget
    )
    with LiveServer(create_app(settings)) as live:

        def one(image: np.ndarray) -> httpx.Response:
            with httpx.Client(base_url=live.url, timeout=120) as client:
                return client.post("/compress", files={"image": ("k.png", _png(image), "image/png")})

        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            bigs = [pool.submit(one, big) for _ in range(3)]
            time.sleep(0.5)
            smalls = [pool.submit(one, small)]
            responses = [f.result() for f in bigs + smalls]
        big_statuses = [r.status_code for r in responses[:3]]
        assert sorted(big_statuses) == [200, 503, 503], big_statuses
        assert responses[3].status_code == 200  # fits beside the big one
        refused = [r for r in responses if r.status_code == 503]
        assert all(r.headers.get("Retry-After") for r in refused)
        assert all("budget" in r.json()["error"]["message"] for r in refused)
        with httpx.Client(base_url=live.url, timeout=120) as client:
            for r in responses:
                if r.status_code == 200:
                    assert client.get(f"/decompress/{r.json()['id']}").status_code == 200
