"""The ``rgic`` command line as real processes: compress/decompress/info against the embedded backend
over gRPC, and ``serve`` (what `make run` starts) stopping cleanly on SIGTERM."""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from benchmarks.service_process import running_service, start_service, wait_until_ready
from service.cli import CUT_SUFFIX
from service.codec.quality import msssim
from service.settings import PROJECT_ROOT


def _rgic(*args: str, backend_address: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "RGIC_BACKEND_ADDRESS": backend_address, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run(
        [sys.executable, "-m", "service.cli", *args],
        env=env,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _children(pid: int) -> list[int]:
    """Child processes of ``pid``, started by any of its threads (the supervisor restarts from its own)."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            found += [int(p) for p in (task / "children").read_text().split()]
        except FileNotFoundError:  # a thread that has just ended
            pass
    return found


def _backends(pid: int) -> list[int]:
    """The embedded backend processes among ``pid``'s children (imports may run short-lived helpers)."""
    found = []
    for child in _children(pid):
        try:
            if b"service.backend.embedded" in Path(f"/proc/{child}/cmdline").read_bytes():
                found.append(child)
        except FileNotFoundError:  # a helper that has already exited
            pass
    return found


def _alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


def test_compress_decompress_and_info_round_trip(backend_address: str, tmp_path: Path, kodak_image) -> None:
    crops = {"a": kodak_image[:96, :128], "b": kodak_image[200:296, 300:428]}
    for name, crop in crops.items():
        Image.fromarray(crop).save(tmp_path / f"{name}.png")
    out = tmp_path / "out"
    images = [str(tmp_path / f"{name}.png") for name in crops]
    done = _rgic(
        "compress", *images, "--msssim", "0.9", "--out-dir", str(out), backend_address=backend_address
    )
    assert done.returncode == 0, done.stderr
    reported = {
        Path(m.group(1)).stem: float(m.group(2))
        for m in re.finditer(r"(\S+) -> .*MS-SSIM ([\d.]+)", done.stdout)
    }
    assert set(reported) == set(crops)

    streams = [str(out / f"{name}.rgic") for name in crops]
    done = _rgic("decompress", *streams, "--out-dir", str(out), backend_address=backend_address)
    assert done.returncode == 0, done.stderr
    for name, crop in crops.items():
        decoded = np.asarray(Image.open(out / f"{name}.png").convert("RGB"))
        assert decoded.shape == crop.shape
        measured = msssim(crop, decoded)
        assert measured >= 0.9 and abs(measured - reported[name]) < 1e-4

    done = _rgic("info", streams[0], backend_address=backend_address)
    assert done.returncode == 0, done.stderr
    header = json.loads(done.stdout)
    assert (header["width"], header["height"]) == (128, 96)

    ladder = json.loads((out / "b.ladder.json").read_text())
    assert ladder[-1]["bytes"] == (out / "b.rgic").stat().st_size
    # more than the first step gives (a longer prefix) where there is one
    lower = ladder[0]["msssim"] + (1e-6 if len(ladder) > 1 else 0.0)
    done = _rgic("cut", streams[1], "--msssim", str(lower), backend_address=backend_address)
    assert done.returncode == 0, done.stderr
    rung = next(r for r in ladder if r["msssim"] >= lower)
    cut = out / f"b.{rung['steps']}{CUT_SUFFIX[rung['cut']]}.rgic"
    assert cut.stat().st_size == rung["bytes"]
    done = _rgic("decompress", str(cut), "--out-dir", str(tmp_path), backend_address=backend_address)
    assert done.returncode == 0, done.stderr
    decoded = np.asarray(Image.open(tmp_path / cut.with_suffix(".png").name).convert("RGB"))
    assert msssim(crops["b"], decoded) == pytest.approx(rung["msssim"], abs=1e-6) and rung["msssim"] >= lower
    done = _rgic("cut", streams[1], "--msssim", "0.9999", backend_address=backend_address)
    assert done.returncode != 0 and "not_in_ladder" in done.stderr


def test_below_a_bitstream_the_layer_made_cut_writes_the_alternate(
    backend_address: str, tmp_path: Path, kodak_image
) -> None:
    Image.fromarray(kodak_image[:256]).save(tmp_path / "sky.png")  # the layer's alone at 0.95
    done = _rgic("compress", str(tmp_path / "sky.png"), "--msssim", "0.95", backend_address=backend_address)
    assert done.returncode == 0, done.stderr
    assert "coder layer" in done.stdout and "(alternate)" in done.stdout
    ladder = json.loads((tmp_path / "sky.ladder.json").read_text())
    rung = min((r for r in ladder if r["cut"] == "alternate"), key=lambda r: r["bytes"])
    master = str(tmp_path / "sky.rgic")
    done = _rgic("cut", master, "--msssim", str(rung["msssim"]), backend_address=backend_address)
    assert done.returncode == 0, done.stderr
    cut = tmp_path / f"sky.{rung['steps']}a.rgic"
    assert cut.read_bytes() == base64.b64decode(rung["bitstream"])
    done = _rgic("decompress", str(cut), backend_address=backend_address)
    assert done.returncode == 0, done.stderr
    decoded = np.asarray(Image.open(cut.with_suffix(".png")).convert("RGB"))
    assert msssim(kodak_image[:256], decoded) == pytest.approx(rung["msssim"], abs=1e-6)


def test_a_bad_file_is_reported_and_the_others_still_run(backend_address: str, tmp_path: Path) -> None:
    Image.fromarray(np.full((64, 64, 3), 90, np.uint8)).save(tmp_path / "good.png")
    (tmp_path / "bad.png").write_text("not an image")
    files = [str(tmp_path / name) for name in ("bad.png", "missing.png", "good.png")]
    done = _rgic("compress", *files, "--bpp", "0.5", backend_address=backend_address)
    assert done.returncode != 0
    assert "bad.png: error (unsupported_image)" in done.stderr
    assert "missing.png: error: No such file or directory" in done.stderr
    assert "2 of 3 files failed" in done.stderr
    assert (tmp_path / "good.rgic").stat().st_size > 0

    (tmp_path / "bad.rgic").write_bytes(b"RGIC" + bytes(40))
    done = _rgic("decompress", str(tmp_path / "bad.rgic"), backend_address=backend_address)
    assert done.returncode != 0 and "error (invalid_bitstream)" in done.stderr


def test_serve_stops_on_sigterm_with_its_backend() -> None:
    process, url = start_service()
    try:
        wait_until_ready(process, url)
        backends = _backends(process.pid)
        assert backends  # the embedded backend runs in its own process
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
    finally:
        process.kill()
    assert not any(_alive(pid) for pid in backends)


def test_sigterm_while_the_model_loads_leaves_no_backend_behind() -> None:
    process, _ = start_service()
    try:
        deadline = time.monotonic() + 60
        while not _backends(process.pid):
            assert time.monotonic() < deadline and process.poll() is None
            time.sleep(0.05)
        backends = _backends(process.pid)
        process.send_signal(signal.SIGTERM)  # the backend is still loading the model
        assert process.wait(timeout=60) == 0
    finally:
        process.kill()
    time.sleep(0.5)
    assert not any(_alive(pid) for pid in backends)


def _catches_sigterm(pid: int) -> bool:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) & (1 << (signal.SIGTERM - 1)))
    return False


def test_sigterm_during_the_imports_is_a_clean_stop() -> None:
    process, _ = start_service()
    try:
        deadline = time.monotonic() + 60
        while not _catches_sigterm(process.pid):  # serve's first step: its handler is in place
            assert time.monotonic() < deadline and process.poll() is None
            time.sleep(0.01)
        assert not _backends(process.pid)  # still importing: the backend starts seconds later
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
    finally:
        process.kill()


def test_serve_on_a_taken_port_says_so_without_loading_the_model() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if k != "RGIC_BACKEND_ADDRESS"}
        done = subprocess.run(
            [sys.executable, "-m", "service.cli", "serve", "--port", str(port)],
            env=env,
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode != 0
    assert f"cannot serve on 127.0.0.1:{port}" in done.stderr and "PORT" in done.stderr
    assert "starting the embedded backend" not in done.stdout


@pytest.mark.parametrize("command", ["compress", "decompress", "info"])
def test_usage_errors_exit_non_zero(command: str, backend_address: str) -> None:
    done = _rgic(command, backend_address=backend_address)
    assert done.returncode == 2 and "usage:" in done.stderr


def test_serve_restarts_a_killed_backend_and_answers_only_200_or_503_meanwhile(tmp_path: Path) -> None:
    import io
    import threading

    import httpx

    buffer = io.BytesIO()
    Image.fromarray(np.full((64, 96, 3), 90, np.uint8)).save(buffer, format="PNG")
    upload = buffer.getvalue()
    with running_service() as (url, pid):
        (backend,) = _backends(pid)
        statuses: list[tuple[float, int]] = []
        stop = threading.Event()

        def load() -> None:
            with httpx.Client(timeout=60) as client:
                while not stop.is_set():
                    response = client.post(f"{url}/compress", files={"image": ("a.png", upload)})
                    statuses.append((time.monotonic(), response.status_code))
                    if response.status_code == 503:
                        assert response.headers.get("Retry-After")
                        time.sleep(0.2)

        worker = threading.Thread(target=load)
        worker.start()
        time.sleep(1.0)
        killed = time.monotonic()
        os.kill(backend, signal.SIGKILL)
        ready_states = []
        deadline = killed + 60
        while time.monotonic() < deadline:
            ready_states.append(httpx.get(f"{url}/readyz", timeout=5).status_code)
            if any(t > killed and s == 200 for t, s in statuses[-3:]) and ready_states[-1] == 200:
                break
            time.sleep(0.5)
        stop.set()
        worker.join(timeout=120)
        recovered = [t for t, s in statuses if t > killed and s == 200]
        assert {s for _, s in statuses} <= {200, 503}
        assert any(s == 503 for _, s in statuses)  # the outage was seen, not slept through
        assert recovered and recovered[0] - killed < 30, "compressions did not resume within 30 s"
        assert 503 in ready_states and ready_states[-1] == 200
        (new_backend,) = _backends(pid)
        assert new_backend != backend
        metrics = httpx.get(f"{url}/metrics").text
        assert "rgic_backend_restarts_total 1.0" in metrics
    assert not _alive(new_backend)


def test_an_empty_backend_address_is_a_configuration_error_at_start() -> None:
    done = _rgic("serve", "--port", "1", backend_address="")
    assert done.returncode == 1
    assert "configuration error" in done.stderr and "RGIC_BACKEND_ADDRESS is empty" in done.stderr


def test_worker_without_a_queue_says_what_it_needs() -> None:
    done = _rgic("worker", backend_address="127.0.0.1:1")
    assert done.returncode == 1 and "RGIC_JOBS_URL" in done.stderr


def test_one_shot_commands_print_no_tensorflow_noise(backend_address: str, tmp_path: Path) -> None:
    image = tmp_path / "flat.png"
    Image.fromarray(np.full((48, 64, 3), 120, np.uint8)).save(image)
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}  # as a user's shell has it
    for args in (["compress", str(image), "--msssim", "0.9"], ["decompress", str(tmp_path / "flat.rgic")]):
        done = subprocess.run(
            [sys.executable, "-m", "service.cli", *args],
            env={**env, "RGIC_BACKEND_ADDRESS": backend_address},
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr
        noise = [line for line in done.stderr.splitlines() if re.search(r"^[IWE]0000|absl|oneDNN|cuda", line)]
        assert not noise, noise
