"""Blob store for bitstreams: content-addressed files, written atomically, verified on read."""

from __future__ import annotations

import hashlib
import json
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
        if not path.exists():
            _write_atomically(path, data)
        return blob_id

    def put_metadata(self, blob_id: str, document: dict) -> None:
        """Store a JSON ``document`` about the blob ``blob_id`` (its quality ladder), replacing any
        earlier one; it carries the blob's id, so a document never describes another blob."""
        path = self._path(blob_id)
        _write_atomically(path.with_suffix(".json"), json.dumps({"blob": blob_id, **document}).encode())

    def get_metadata(self, blob_id: str) -> dict | None:
        """The JSON document stored about ``blob_id``, or None when there is none."""
        path = self._path(blob_id).with_suffix(".json")
        try:
            document = json.loads(path.read_bytes())
        except FileNotFoundError:
            return None
        except ValueError as error:
            raise CorruptBlob(f"stored metadata of {blob_id} is not JSON") from error
        if document.get("blob") != blob_id:
            raise CorruptBlob(f"stored metadata of {blob_id} names another blob")
        return document

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


def _write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, fsync, rename into place, fsync the folder:
    a reader sees the old file or the whole new one, never a part."""
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
