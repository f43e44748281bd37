"""Errors with a stable code, a message a person can act on, and the HTTP status that fits."""

from __future__ import annotations

__all__ = [
    "BackendUnavailable",
    "BadParameter",
    "InvalidBitstream",
    "ModelVersionNotServed",
    "NotAnImage",
    "NotFound",
    "NotInLadder",
    "PayloadTooLarge",
    "RetryLater",
    "ServiceError",
    "Unauthorized",
]


class ServiceError(Exception):
    """Base of every error the gateway reports to clients."""

    status: int = 500
    code: str = "internal_error"

    def __init__(self, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or {}


class BadParameter(ServiceError):
    status, code = 400, "bad_parameter"


class Unauthorized(ServiceError):
    status, code = 401, "unauthorized"


class NotFound(ServiceError):
    status, code = 404, "not_found"


class PayloadTooLarge(ServiceError):
    status, code = 413, "payload_too_large"


class NotAnImage(ServiceError):
    status, code = 415, "unsupported_image"


class InvalidBitstream(ServiceError):
    status, code = 422, "invalid_bitstream"


class NotInLadder(ServiceError):
    """No prefix of a stored bitstream meets the quality or fits the size asked for."""

    status, code = 422, "not_in_ladder"


class ModelVersionNotServed(ServiceError):
    """The bitstream names a model version that the backend does not serve."""

    status, code = 422, "model_version_not_served"


class RetryLater(ServiceError):
    """503 with ``Retry-After``: a dependency is busy or unreachable, the same request may succeed soon."""

    status, code = 503, "unavailable"

    def __init__(self, message: str, retry_after_seconds: int = 2) -> None:
        super().__init__(message, headers={"Retry-After": str(retry_after_seconds)})


class BackendUnavailable(RetryLater):
    code = "backend_unavailable"
