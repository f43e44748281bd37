"""Deployment checks that need no Docker engine: compose, Prometheus, Grafana, TF Serving configs."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import yaml
from google.protobuf import text_format

from service.backend.model_config import read_model_config
from service.settings import PROJECT_ROOT
from tests.conftest import LiveServer, free_port
from tests.deploy.serving_protos import TFSERVING_METRICS, BatchingParameters, MonitoringConfig
from tests.service.api.routes.test_compress import _png

DEPLOY = PROJECT_ROOT / "deploy"
COMPOSE = PROJECT_ROOT / "docker-compose.yml"


def _tool(name: str) -> str:
    path = shutil.which(name)
    assert path, f"{name} is not installed: `make test` installs it (Debian package)"
    return path


def test_compose_file_is_valid_for_every_profile() -> None:
    for profiles in (["gpu"], ["cpu"], ["gpu", "scaled"]):
        flags = [arg for profile in profiles for arg in ("--profile", profile)]
        result = subprocess.run(
            [_tool("docker-compose"), *flags, "-f", str(COMPOSE), "config", "-q"],
            capture_output=True,
            text=True,
            cwd=PROJECT_ROOT,
        )
        assert result.returncode == 0, result.stderr


def test_every_mounted_file_exists_and_gpu_is_reserved() -> None:
    compose = yaml.safe_load(COMPOSE.read_text())
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (PROJECT_ROOT / source).exists(), f"{name} mounts missing {source}"
        if "build" in service and "context" in service["build"]:
            assert (PROJECT_ROOT / service["build"]["context"] / service["build"]["dockerfile"]).exists()
    devices = compose["services"]["tfserving"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]
    assert compose["services"]["tfserving-cpu"]["profiles"] == ["cpu"]


def test_gateway_dockerfile_is_non_root_with_healthcheck_and_the_make_run_entry_point() -> None:
    dockerfile = (DEPLOY / "gateway" / "Dockerfile").read_text()
    assert re.search(r"^USER (?!root)\S+", dockerfile, re.M)
    assert "HEALTHCHECK" in dockerfile and "/healthz" in dockerfile
    assert '"rgic", "serve"' in dockerfile


def test_tf_serving_configs_parse_with_its_protos() -> None:
    config = read_model_config(PROJECT_ROOT / "models" / "models.config")
    assert [model.name for model in config.model_config_list.config] == ["residual_gru", "restoration"]
    for model in config.model_config_list.config:  # a bitstream names the versions that decode it
        assert model.model_version_policy.WhichOneof("policy_choice") == "all"
    batching = text_format.Parse((DEPLOY / "tfserving" / "batching.config").read_text(), BatchingParameters())
    assert batching.max_batch_size.value >= 1 and batching.num_batch_threads.value >= 1
    monitoring = text_format.Parse(
        (DEPLOY / "tfserving" / "monitoring.config").read_text(), MonitoringConfig()
    )
    assert monitoring.prometheus_config.enable
    scrape = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    tf_job = next(j for j in scrape["scrape_configs"] if j["job_name"] == "tfserving")
    assert tf_job["metrics_path"] == monitoring.prometheus_config.path


def test_promtool_accepts_config_and_rules() -> None:
    for command in (["check", "config", "prometheus.yml"], ["check", "rules", "alerts.yml"]):
        result = subprocess.run(
            [_tool("promtool"), *command], capture_output=True, text=True, cwd=DEPLOY / "prometheus"
        )
        assert result.returncode == 0, result.stdout + result.stderr


def _metric_names(expression: str) -> set[str]:
    return set(re.findall(r"(?:rgic_|:tensorflow:)[A-Za-z0-9_:]*", expression))


def test_dashboard_queries_name_real_metrics(http: httpx.Client) -> None:
    http.post(
        "/compress",
        files={"image": ("x.png", _png(np.zeros((32, 32, 3), np.uint8)), "image/png")},
        data={"bpp": "4"},
    )
    exported = set()
    for line in http.get("/metrics").text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            exported.add(name)
            if kind == "histogram":
                exported |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
            if kind == "counter":
                exported.add(f"{name}_total" if not name.endswith("_total") else name)
    tf_exported = {f"{m}{s}" for m in TFSERVING_METRICS for s in ("", "_bucket", "_sum", "_count")}
    dashboard = json.loads((DEPLOY / "grafana" / "dashboards" / "rgic.json").read_text())
    assert len(dashboard["panels"]) >= 10
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            names = _metric_names(target["expr"])
            assert names, f"panel {panel['title']!r} queries no known metric"
            unknown = names - exported - tf_exported
            assert not unknown, f"panel {panel['title']!r} queries unknown metrics {unknown}"


def test_real_prometheus_scrapes_the_gateway_with_the_shipped_config(
    gateway: LiveServer, tmp_path: Path
) -> None:
    shipped = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    gateway_port = gateway.url.rsplit(":", 1)[1]
    for job in shipped["scrape_configs"]:  # same jobs and paths; targets pointed at this test's servers
        job.pop("dns_sd_configs")
        job["static_configs"] = [
            {"targets": [f"127.0.0.1:{gateway_port if job['job_name'] == 'gateway' else 1}"]}
        ]
    shipped["global"]["scrape_interval"] = "1s"
    shutil.copy(DEPLOY / "prometheus" / "alerts.yml", tmp_path / "alerts.yml")
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(shipped))
    port = free_port()
    process = subprocess.Popen(
        [
            _tool("prometheus"),
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        found = []
        while time.monotonic() < deadline and not found:
            time.sleep(1)
            try:
                answer = httpx.get(
                    f"http://127.0.0.1:{port}/api/v1/query",
                    params={"query": 'rgic_http_requests_in_flight{job="gateway"}'},
                    timeout=2,
                ).json()
                found = answer["data"]["result"]
            except (httpx.HTTPError, KeyError):
                continue
        assert found, "Prometheus did not scrape the gateway's metrics within 60 s"
        rules = httpx.get(f"http://127.0.0.1:{port}/api/v1/rules", timeout=5).json()
        names = {r["name"] for g in rules["data"]["groups"] for r in g["rules"]}
        assert {"ModelBackendDown", "HighErrorRate"} <= names
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.mark.parametrize("doc", ["deploy.md"])
def test_deploy_doc_exists(doc: str) -> None:
    assert (PROJECT_ROOT / "docs" / doc).exists()
