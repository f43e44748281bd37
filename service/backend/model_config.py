"""Read TF Serving's model config file (text ``ModelServerConfig``) and decide which versions to serve."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

__all__ = ["ServedModel", "read_model_config", "served_models"]


@dataclass(frozen=True)
class ServedModel:
    name: str
    base_path: Path
    versions: tuple[int, ...]


def read_model_config(path: Path) -> model_server_config_pb2.ModelServerConfig:
    """Parse a TF Serving ``--model_config_file``."""
    config = model_server_config_pb2.ModelServerConfig()
    text_format.Parse(Path(path).read_text(), config)
    return config


def _resolve(base_path: str, config_file: Path) -> Path:
    # The shipped config names container paths (/models/<name>); outside the container the same
    # folder sits beside the config file, so fall back to <config dir>/<last path component>.
    path = Path(base_path)
    if path.is_dir():
        return path
    if not path.is_absolute():
        return (config_file.parent / path).resolve()
    return config_file.parent / path.name


def _on_disk_versions(base_path: Path) -> list[int]:
    if not base_path.is_dir():
        return []
    return sorted(
        int(p.name) for p in base_path.iterdir() if p.name.isdigit() and (p / "saved_model.pb").exists()
    )


def served_models(config_file: Path) -> list[ServedModel]:
    """Models and versions that TF Serving would load from ``config_file``, by its version policies."""
    config_file = Path(config_file)
    config = read_model_config(config_file)
    models = []
    for entry in config.model_config_list.config:
        base_path = _resolve(entry.base_path, config_file)
        on_disk = _on_disk_versions(base_path)
        policy = entry.model_version_policy
        kind = policy.WhichOneof("policy_choice")
        if kind == "all":
            versions = on_disk
        elif kind == "specific":
            versions = [v for v in on_disk if v in set(policy.specific.versions)]
        else:  # TF Serving's default: the latest num_versions (default 1)
            count = policy.latest.num_versions if kind == "latest" and policy.latest.num_versions else 1
            versions = on_disk[-count:]
        models.append(ServedModel(entry.name, base_path, tuple(versions)))
    return models
