"""Warm-up requests: written at export in TF Serving's format, replayable against the exported signatures."""

import logging
from pathlib import Path

import tensorflow as tf

from model_export.warmup import WARMUP_FILE, warmup_requests
from service.backend.embedded import LoadedModel
from service.backend.tensors import from_tensor_proto


def test_export_writes_one_request_per_heavy_signature_and_each_runs(exported) -> None:
    _, path = exported
    assert (path / WARMUP_FILE).is_file()
    requests = list(warmup_requests(path))
    assert [r.model_spec.signature_name for r in requests] == ["compress", "decompress", "decode_step"]
    signatures = tf.saved_model.load(str(path)).signatures
    for request in requests:
        inputs = {name: tf.constant(from_tensor_proto(proto)) for name, proto in request.inputs.items()}
        outputs = signatures[request.model_spec.signature_name](**inputs)
        assert all(value.shape[0] == 1 for value in outputs.values())


def test_the_embedded_backend_replays_them_when_it_loads_a_version(exported, caplog) -> None:
    _, path = exported
    with caplog.at_level(logging.INFO, logger="rgic.backend"):
        LoadedModel("tiny", 1, path)
    assert "tiny version 1: 3 warm-up requests" in caplog.text


def test_a_version_without_the_file_has_no_requests(tmp_path: Path) -> None:
    assert list(warmup_requests(tmp_path)) == []
