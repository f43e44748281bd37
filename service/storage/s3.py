"""Blob store in S3-compatible object storage (AWS S3, SeaweedFS, Ceph RGW, MinIO...) through boto3."""

from __future__ import annotations

from urllib.parse import urlparse

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from service import metrics
from service.storage.base import BlobStore, StoreFull, StoreUnavailable

__all__ = ["S3BlobStore"]

_ABSENT = {"NoSuchKey", "404", "NotFound"}
#: a conditional put that found the key there already: the same bytes are stored (content addressing)
_ALREADY_THERE = {"PreconditionFailed", "412", "ConditionalRequestConflict", "409"}
_NO_ROOM = {"QuotaExceeded", "InsufficientStorage", "507", "XMinioStorageFull"}


class S3BlobStore(BlobStore):
    """Blobs as objects ``<prefix>/<id[:2]>/<id>`` in ``bucket`` (metadata as ``<id>.json``).

    A PUT is atomic in S3: an object is whole or absent. Blobs are written with ``If-None-Match: *``, so
    two replicas storing the same bytes never overwrite each other. Credentials come from the standard
    AWS chain (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, profiles, instance or pod roles).
    Retention is the bucket's lifecycle rule (docs/deploy.md), not the gateway's.
    """

    def __init__(self, url: str, endpoint_url: str | None = None, timeout_seconds: float = 10.0) -> None:
        parsed = urlparse(url)
        if parsed.scheme != "s3" or not parsed.netloc:
            raise ValueError(f"blob URL {url!r} is not s3://bucket[/prefix]")
        self.bucket = parsed.netloc
        self.prefix = parsed.path.strip("/")
        self.location = f"s3://{self.bucket}/{self.prefix}".rstrip("/")
        self.client = boto3.session.Session().client(
            "s3",
            endpoint_url=endpoint_url or None,
            config=Config(
                connect_timeout=timeout_seconds,
                read_timeout=timeout_seconds,
                retries={"max_attempts": 3, "mode": "standard"},
                # checksums only where S3 requires them: not every S3-compatible server knows the new ones
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
                s3={"addressing_style": "path"},
            ),
        )

    def _key(self, blob_id: str, suffix: str = "") -> str:
        name = f"{blob_id[:2]}/{blob_id}{suffix}"
        return f"{self.prefix}/{name}" if self.prefix else name

    def _put(self, blob_id: str, data: bytes) -> None:
        self._call("put", self._key(blob_id), data, if_none_match=True)

    def _get(self, blob_id: str) -> bytes | None:
        return self._call("get", self._key(blob_id))

    def _put_metadata(self, blob_id: str, body: bytes) -> None:
        self._call("put", self._key(blob_id, ".json"), body)

    def _get_metadata(self, blob_id: str) -> bytes | None:
        return self._call("get", self._key(blob_id, ".json"))

    def _call(self, operation: str, key: str, data: bytes = b"", if_none_match: bool = False) -> bytes | None:
        try:
            if operation == "get":
                return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
            extra = {"IfNoneMatch": "*"} if if_none_match else {}
            self.client.put_object(Bucket=self.bucket, Key=key, Body=data, **extra)
            return None
        except ClientError as error:
            code = str(error.response.get("Error", {}).get("Code", ""))
            status = str(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
            if operation == "get" and (code in _ABSENT or status == "404"):
                return None
            if operation == "put" and if_none_match and (code in _ALREADY_THERE or status in _ALREADY_THERE):
                return None
            metrics.STORE_ERRORS.labels(operation, code or status or "client_error").inc()
            if code in _NO_ROOM or status == "507":
                raise StoreFull(f"the object store has no room for {key}: {code}") from error
            raise StoreUnavailable(f"the object store refused {operation} {key}: {code or status}") from error
        except BotoCoreError as error:
            metrics.STORE_ERRORS.labels(operation, type(error).__name__).inc()
            raise StoreUnavailable(f"the object store cannot be reached: {error}") from error

    def check(self) -> None:
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except (ClientError, BotoCoreError) as error:
            raise StoreUnavailable(f"bucket {self.bucket} cannot be used: {error}") from error
