"""Logging for a fleet: one line per event, each with the request id, as text or JSON; TensorFlow quiet.

The request id comes from ``X-Request-ID`` (or is made) in the gateway's middleware, travels in a
context variable to every log line of the request, to the backend call's gRPC metadata and to its job.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import time
from collections.abc import Iterator
from contextvars import ContextVar

__all__ = ["REQUEST_ID", "configure_logging", "import_tensorflow_quietly"]

#: the id of the request (or job) whose work this is; "-" outside any
REQUEST_ID: ContextVar[str] = ContextVar("request_id", default="-")

#: loggers that say more than an operator needs at INFO
_QUIET = {
    "tensorflow": logging.ERROR,
    "absl": logging.ERROR,
    "botocore": logging.WARNING,
    "saq": logging.ERROR,
}


class _RequestId(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request_id (and the exception)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", "-"),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(log_format: str = "text", level: str = "INFO") -> None:
    """Every logger through one handler on stderr (text or JSON), each line with its request id."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_RequestId())
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name, quiet_level in _QUIET.items():
        logger = logging.getLogger(name)
        logger.handlers.clear()  # tensorflow's own handler printed each of its lines twice
        logger.setLevel(quiet_level)
        logger.propagate = True
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True


@contextlib.contextmanager
def _stderr_to_devnull() -> Iterator[None]:
    """File descriptor 2 to /dev/null: TensorFlow's C++ code writes there before any log setting holds."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def import_tensorflow_quietly() -> None:
    """Import TensorFlow without its start-up lines (CUDA probe, CPU feature notes, absl's banner);
    ``RGIC_TF_VERBOSE=1`` keeps them. An import that fails still raises, after stderr is back."""
    if os.environ.get("RGIC_TF_VERBOSE") == "1":
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if "tensorflow" in sys.modules:
        return
    with _stderr_to_devnull():
        import tensorflow as tf

        tf.config.list_physical_devices("GPU")  # the CUDA probe, while its error line is hidden
