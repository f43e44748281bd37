"""Blob store for bitstreams: content-addressed files, written atomically, verified on read."""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path

from service.errors import NotFound, ServiceError

__all__ = ["BlobStore", "CorruptBlob"]

_ID = re.compile(r"^[0-9a-f]{64}$")


class CorruptBlob(ServiceError):
    status, code = 500, "storage_corrupt"


class BlobStore:
    """Bitstreams on a local (or shared) directory, named by the SHA-256 of their content.

    Writes go to a temporary file in the same directory, are fsynced, then renamed into place,
    so a reader never sees a partial blob. Ids are validated hex digests: no path can escape.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    @staticmethod
    def blob_id(data: bytes) -> str:
        return hashlib.sha256(data).hexdigest()

    def _path(self, blob_id: str) -> Path:
        if not _ID.match(blob_id):
            raise NotFound(f"no bitstream with id {blob_id[:80]!r}: ids are 64 lowercase hex digits")
        return self.root / blob_id[:2] / blob_id

    def put(self, data: bytes) -> str:
        """Store ``data``; returns its id. Storing the same bytes twice is a no-op."""
        blob_id = self.blob_id(data)
        path = self._path(blob_id)
        if path.exists():
            return blob_id
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        return blob_id

    def get(self, blob_id: str) -> bytes:
        """The bytes stored under ``blob_id``; ``NotFound`` if absent, ``CorruptBlob`` if altered."""
        path = self._path(blob_id)
        try:
            data = path.read_bytes()
        except FileNotFoundError as error:
            raise NotFound(f"no bitstream with id {blob_id}") from error
        if self.blob_id(data) != blob_id:
            raise CorruptBlob(f"stored bitstream {blob_id} fails its checksum")
        return data
