"""Asynchronous compress over real HTTP: 202 with a job URL, progress while it runs, the same report or
the same error as the synchronous call, 404 for an unknown job."""

from __future__ import annotations

import time

import httpx
import numpy as np

from tests.service.api.routes.test_compress import _png

ASYNC = {"Prefer": "respond-async"}


def _wait(http: httpx.Client, url: str, timeout: float = 300) -> tuple[dict, list[tuple[str, float]]]:
    """Poll a job until it ends; returns its last state and every (stage, progress) seen."""
    seen: list[tuple[str, float]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = http.get(url).json()
        seen.append((state["stage"], state["progress"]))
        if state["status"] in ("done", "failed"):
            return state, seen
        time.sleep(0.05)
    raise AssertionError(f"job {url} did not end: {seen[-3:]}")


def test_async_compress_reports_progress_and_the_synchronous_result(
    http: httpx.Client, kodak_image: np.ndarray
) -> None:
    body = _png(kodak_image)
    accepted = http.post(
        "/compress", files={"image": ("k.png", body)}, data={"msssim": "0.93"}, headers=ASYNC
    )
    assert accepted.status_code == 202
    url = accepted.headers["Location"]
    assert url == accepted.json()["url"] and accepted.json()["status"] in ("queued", "running")
    state, seen = _wait(http, url)
    assert state["status"] == "done" and state["progress"] == 1.0
    progress = [p for _, p in seen]
    assert progress == sorted(progress)  # never goes back
    assert any(0 < p < 1 for p in progress)  # seen while it ran
    assert state["stages"][0] == "decoding the upload" and "encoding" in state["stages"]
    result = state["result"]
    synchronous = http.post("/compress", files={"image": ("k.png", body)}, data={"msssim": "0.93"}).json()
    for key in ("id", "bytes", "msssim", "psnr", "iterations"):
        assert result[key] == synchronous[key]  # the same bitstream (content-addressed id) and figures
    assert http.get(result["urls"]["bitstream"]).status_code == 200  # stored like any other


def test_a_failed_job_carries_the_synchronous_error(http: httpx.Client) -> None:
    synchronous = http.post("/compress", files={"image": ("x.png", b"not an image")})
    accepted = http.post("/compress", files={"image": ("x.png", b"not an image")}, headers=ASYNC)
    assert accepted.status_code == 202
    state, _ = _wait(http, accepted.headers["Location"])
    assert state["status"] == "failed"
    assert state["http_status"] == synchronous.status_code == 415
    assert state["error"] == synchronous.json()["error"]


def test_unknown_job_is_404(http: httpx.Client) -> None:
    response = http.get("/jobs/0123456789abcdef")
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"


def test_bad_parameters_are_refused_before_a_job_is_made(http: httpx.Client) -> None:
    response = http.post(
        "/compress",
        files={"image": ("k.png", _png(np.zeros((8, 8, 3), np.uint8)))},
        data={"msssim": "2"},
        headers=ASYNC,
    )
    assert response.status_code == 400


def test_async_decompress_stores_the_same_png_and_reports_progress(
    http: httpx.Client, kodak_image: np.ndarray
) -> None:
    report = http.post(
        "/compress", files={"image": ("k.png", _png(kodak_image[:256, :512]))}, data={"msssim": "0.9"}
    ).json()
    synchronous = http.get(report["urls"]["decompress"])
    for accepted in (
        http.get(report["urls"]["decompress"], headers=ASYNC),
        http.post("/decompress", content=http.get(report["urls"]["bitstream"]).content, headers=ASYNC),
    ):
        assert accepted.status_code == 202 and accepted.json()["kind"] == "decompress"
        state, seen = _wait(http, accepted.headers["Location"])
        assert state["status"] == "done", state
        assert state["stages"] == ["reading the bitstream", "decoding", "writing the PNG"], state
        assert [p for _, p in seen] == sorted(p for _, p in seen)  # never goes back
        result = state["result"]
        assert (result["width"], result["height"]) == (512, 256)
        image = http.get(result["url"])
        assert image.headers["content-type"] == "image/png"
        assert image.content == synchronous.content and result["bytes"] == len(image.content)


def test_a_failed_decompress_job_carries_the_synchronous_error(http: httpx.Client) -> None:
    corrupt = b"RGIC" + bytes(40)
    synchronous = http.post("/decompress", content=corrupt)
    accepted = http.post("/decompress", content=corrupt, headers=ASYNC)
    state, _ = _wait(http, accepted.headers["Location"])
    assert state["status"] == "failed" and state["http_status"] == synchronous.status_code == 422
    assert state["error"] == synchronous.json()["error"]
    assert http.get("/decompress/" + "0" * 64, headers=ASYNC).status_code == 404  # before any job
    progressive = http.post("/decompress?progressive=true", content=corrupt, headers=ASYNC)
    assert progressive.status_code == 400 and "progressive" in progressive.json()["error"]["message"]
