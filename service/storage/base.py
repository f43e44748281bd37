"""What every blob store does: content-addressed blobs, written whole or not at all, verified on read."""

from __future__ import annotations

import hashlib
import json
import re
from abc import ABC, abstractmethod

from service.errors import NotFound, RetryLater, ServiceError

__all__ = ["BlobStore", "CorruptBlob", "StoreFull", "StoreUnavailable"]

_ID = re.compile(r"^[0-9a-f]{64}$")


class CorruptBlob(ServiceError):
    status, code = 500, "storage_corrupt"


class StoreFull(ServiceError):
    """The store refused a write for lack of space (507): nothing of it was kept."""

    status, code = 507, "storage_full"


class StoreUnavailable(RetryLater):
    """The store could not be reached or refused the call (503): retry later."""

    code = "storage_unavailable"


class BlobStore(ABC):
    """Blobs named by the SHA-256 of their content, plus one JSON document per blob (its ladder).

    Implementations write atomically (a reader sees the whole blob or none), verify the hash on every
    read and accept only 64-hex-digit ids, so no id can name anything outside the store.
    """

    #: where the blobs live, for logs and /readyz: a directory or an s3:// URL
    location: str

    @staticmethod
    def blob_id(data: bytes) -> str:
        return hashlib.sha256(data).hexdigest()

    @staticmethod
    def check_id(blob_id: str) -> str:
        """``blob_id`` when it is 64 lowercase hex digits; ``NotFound`` otherwise."""
        if not _ID.match(blob_id):
            raise NotFound(f"no bitstream with id {blob_id[:80]!r}: ids are 64 lowercase hex digits")
        return blob_id

    def put(self, data: bytes) -> str:
        """Store ``data``; returns its id. Storing the same bytes twice is a no-op."""
        blob_id = self.blob_id(data)
        self._put(blob_id, data)
        return blob_id

    def get(self, blob_id: str) -> bytes:
        """The bytes stored under ``blob_id``; ``NotFound`` if absent, ``CorruptBlob`` if altered."""
        data = self._get(self.check_id(blob_id))
        if data is None:
            raise NotFound(f"no bitstream with id {blob_id}")
        if self.blob_id(data) != blob_id:
            raise CorruptBlob(f"stored bitstream {blob_id} fails its checksum")
        return data

    def put_metadata(self, blob_id: str, document: dict) -> None:
        """Store a JSON ``document`` about the blob ``blob_id`` (its quality ladder), replacing any
        earlier one; it carries the blob's id, so a document never describes another blob."""
        body = json.dumps({"blob": self.check_id(blob_id), **document}).encode()
        self._put_metadata(blob_id, body)

    def get_metadata(self, blob_id: str) -> dict | None:
        """The JSON document stored about ``blob_id``, or None when there is none."""
        body = self._get_metadata(self.check_id(blob_id))
        if body is None:
            return None
        try:
            document = json.loads(body)
        except ValueError as error:
            raise CorruptBlob(f"stored metadata of {blob_id} is not JSON") from error
        if not isinstance(document, dict) or document.get("blob") != blob_id:
            raise CorruptBlob(f"stored metadata of {blob_id} names another blob")
        return document

    @abstractmethod
    def _put(self, blob_id: str, data: bytes) -> None:
        """Store ``data`` under ``blob_id`` unless it is there already; all or nothing."""

    @abstractmethod
    def _get(self, blob_id: str) -> bytes | None:
        """The stored bytes, or None when absent."""

    @abstractmethod
    def _put_metadata(self, blob_id: str, body: bytes) -> None:
        """Store (replace) the metadata document of ``blob_id``; all or nothing."""

    @abstractmethod
    def _get_metadata(self, blob_id: str) -> bytes | None:
        """The stored metadata document, or None when absent."""

    def check(self) -> None:
        """Raise ``StoreUnavailable`` when the store cannot be used now (for /readyz)."""
