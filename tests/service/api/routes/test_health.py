import re

import httpx

from tests.service.api.routes.test_compress import _png


def _value(text: str, pattern: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if re.match(pattern, line):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_health_and_readiness(http: httpx.Client) -> None:
    assert http.get("/healthz").json() == {"status": "ok"}
    ready = http.get("/readyz").json()
    assert ready["ready"] is True and ready["versions"]


def test_metrics_counters_move(http: httpx.Client) -> None:
    import numpy as np

    before = http.get("/metrics").text
    http.post(
        "/compress",
        files={"image": ("x.png", _png(np.zeros((32, 32, 3), np.uint8)), "image/png")},
        data={"bpp": "4"},
    )
    after = http.get("/metrics").text
    pattern = r'rgic_http_requests_total\{method="POST",route="/compress",status="200"\}'
    assert _value(after, pattern) == _value(before, pattern) + 1
    assert _value(
        after, r'rgic_backend_call_duration_seconds_count\{outcome="ok",signature="compress"\}'
    ) > _value(before, r'rgic_backend_call_duration_seconds_count\{outcome="ok",signature="compress"\}')
    assert _value(after, r"rgic_compressed_bpp_count") == _value(before, r"rgic_compressed_bpp_count") + 1
    assert _value(after, r'rgic_bytes_in_total\{route="/compress"\}') > _value(
        before, r'rgic_bytes_in_total\{route="/compress"\}'
    )


def test_openapi_and_web_page(http: httpx.Client) -> None:
    spec = http.get("/openapi.json").json()
    assert {"/compress", "/decompress", "/decompress/{blob_id}", "/bitstreams/{blob_id}"} <= set(
        spec["paths"]
    )
    assert "<form" in http.get("/").text


def test_metrics_pass_promtool_and_have_no_created_series(http: httpx.Client) -> None:
    import shutil
    import subprocess

    text = http.get("/metrics").text
    assert "_created" not in text
    for name in ("rgic_jobs_queued", "rgic_jobs_in_flight", "rgic_store_errors_total", "rgic_store_bytes"):
        assert f"# TYPE {name} " in text
    promtool = shutil.which("promtool")
    assert promtool, "promtool is not installed: `make test` installs it (Debian package prometheus)"
    checked = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True)
    assert checked.returncode == 0 and not checked.stdout.strip(), checked.stdout + checked.stderr


def test_every_response_carries_a_request_id(http: httpx.Client) -> None:
    given = http.get("/healthz", headers={"X-Request-ID": "trace-42"})
    assert given.headers["x-request-id"] == "trace-42"
    made = http.get("/bitstreams/nope")
    assert made.status_code == 404 and re.fullmatch(r"[0-9a-f]{32}", made.headers["x-request-id"])
    odd = http.get("/healthz", headers={"X-Request-ID": "has spaces\tand tabs"})
    assert odd.headers["x-request-id"] != "has spaces\tand tabs"  # not echoed into logs and headers
