"""Kubernetes manifests, checked offline: every overlay renders with `kubectl kustomize` and validates
against the bundled Kubernetes schemas with `kubernetes-validate --strict` (unknown fields rejected)."""

from __future__ import annotations

import copy
import subprocess

import kubernetes_validate
import pytest
import yaml
from google.protobuf import text_format

from service.jobs.redis_queue import QUEUE_NAME
from service.settings import PROJECT_ROOT
from tests.deploy.test_deploy import _tool

K8S = PROJECT_ROOT / "deploy" / "k8s"
OVERLAYS = ["cpu", "gpu", "keda"]
VERSION = kubernetes_validate.latest_version()


def _render(overlay: str) -> list[dict]:
    result = subprocess.run(
        [_tool("kubectl"), "kustomize", str(K8S / "overlays" / overlay)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def _by(resources: list[dict], kind: str, name: str) -> dict:
    return next(r for r in resources if r["kind"] == kind and r["metadata"]["name"] == name)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_overlay_renders_and_validates_strictly(overlay: str) -> None:
    resources = _render(overlay)
    unchecked = []
    for resource in resources:
        try:
            kubernetes_validate.validate(resource, VERSION, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            unchecked.append(resource["kind"])
    assert unchecked == (["ScaledObject"] if overlay == "keda" else [])  # a CRD: checked below


def test_strict_validation_rejects_an_unknown_field() -> None:
    deployment = copy.deepcopy(_by(_render("cpu"), "Deployment", "rgic-gateway"))
    deployment["spec"]["template"]["spec"]["containers"][0]["livenessProbes"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, VERSION, strict=True)


def test_gateway_is_probed_scaled_and_protected() -> None:
    resources = _render("gpu")
    gateway = _by(resources, "Deployment", "rgic-gateway")["spec"]["template"]["spec"]["containers"][0]
    assert gateway["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert gateway["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert gateway["resources"]["requests"] and gateway["resources"]["limits"]["memory"]
    assert _by(resources, "HorizontalPodAutoscaler", "rgic-gateway")["spec"]["scaleTargetRef"]["name"] == (
        "rgic-gateway"
    )
    assert _by(resources, "PodDisruptionBudget", "rgic-gateway")["spec"]["minAvailable"] == 1
    worker = _by(resources, "Deployment", "rgic-worker")["spec"]["template"]["spec"]["containers"][0]
    assert worker["args"][:2] == ["rgic", "worker"]
    for container in (gateway, worker):  # S3 credentials come from a Secret, settings from the ConfigMap
        sources = {next(iter(s)): next(iter(s.values()))["name"] for s in container["envFrom"]}
        assert sources == {"configMapRef": "rgic-config", "secretRef": "rgic-s3-credentials"}


def test_tf_serving_is_headless_and_only_the_gpu_overlays_ask_for_a_gpu() -> None:
    for overlay in OVERLAYS:
        resources = _render(overlay)
        assert _by(resources, "Service", "tfserving")["spec"]["clusterIP"] == "None"  # per-call balancing
        container = _by(resources, "Deployment", "tfserving")["spec"]["template"]["spec"]["containers"][0]
        gpus = container["resources"]["limits"].get("nvidia.com/gpu")
        assert gpus == (None if overlay == "cpu" else 1)
        assert container["image"].endswith("-gpu") == (overlay != "cpu")


def test_the_model_config_map_is_the_shipped_model_config() -> None:
    from tensorflow_serving.config import model_server_config_pb2

    config_map = _by(_render("cpu"), "ConfigMap", "tfserving-models")
    shipped = (PROJECT_ROOT / "models" / "models.config").read_text()
    parsed = [
        text_format.Parse(text, model_server_config_pb2.ModelServerConfig())
        for text in (config_map["data"]["models.config"], shipped)
    ]
    assert parsed[0] == parsed[1]


def test_keda_scales_workers_on_the_queue_saq_fills() -> None:
    scaled = _by(_render("keda"), "ScaledObject", "rgic-worker")
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    assert scaled["spec"]["scaleTargetRef"]["name"] == "rgic-worker"
    trigger = scaled["spec"]["triggers"][0]
    assert trigger["type"] == "redis" and trigger["metadata"]["listName"] == f"saq:{QUEUE_NAME}:queued"
