"""Log lines carry the request id, as text or as one JSON object per line."""

from __future__ import annotations

import json
import logging

import pytest

from service.logs import REQUEST_ID, configure_logging


@pytest.fixture
def restore_logging():
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_json_lines_carry_the_request_id(restore_logging, capsys: pytest.CaptureFixture) -> None:
    configure_logging("json", "INFO")
    token = REQUEST_ID.set("req-7")
    try:
        logging.getLogger("rgic.test").warning("stored %d bytes", 12)
    finally:
        REQUEST_ID.reset(token)
    logging.getLogger("rgic.test").info("outside a request")
    first, second = (json.loads(line) for line in capsys.readouterr().err.strip().splitlines())
    assert first["message"] == "stored 12 bytes" and first["request_id"] == "req-7"
    assert first["level"] == "warning" and first["logger"] == "rgic.test" and first["time"].endswith("Z")
    assert second["request_id"] == "-"


def test_text_lines_name_the_request_and_tensorflow_says_only_errors(
    restore_logging, capsys: pytest.CaptureFixture
) -> None:
    configure_logging("text", "INFO")
    token = REQUEST_ID.set("abc")
    try:
        logging.getLogger("rgic.test").info("hello")
        logging.getLogger("tensorflow").warning("deprecated loader")
    finally:
        REQUEST_ID.reset(token)
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "[abc] hello" in lines[0] and "INFO rgic.test" in lines[0]
