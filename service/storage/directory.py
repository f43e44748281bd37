"""Blob store on a local (or shared) directory, capped by size and age, oldest evicted first."""

from __future__ import annotations

import errno
import os
import tempfile
import threading
import time
from collections import OrderedDict
from pathlib import Path

from service import metrics
from service.storage.base import BlobStore, StoreFull, StoreUnavailable

__all__ = ["DirectoryBlobStore"]

#: errors that mean "no room": a full disk, a quota, a file-size limit
_NO_ROOM = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


class DirectoryBlobStore(BlobStore):
    """Blobs as files ``<root>/<id[:2]>/<id>`` (metadata beside them as ``<id>.json``).

    Writes go to a temporary file in the same directory, are fsynced, then renamed into place, so a reader
    never sees a partial blob. With ``max_bytes`` the directory never holds more: before a write, the
    oldest blobs (by last write) are evicted to make room; with ``max_age_seconds`` older blobs go too.
    A blob larger than the whole cap, or a disk that refuses the write, answers ``StoreFull`` (507) and
    leaves the store as it was.
    """

    def __init__(self, root: Path, max_bytes: int = 0, max_age_seconds: float = 0.0) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.location = str(self.root)
        self.max_bytes = max_bytes
        self.max_age_seconds = max_age_seconds
        self._lock = threading.Lock()
        # every file of the store, oldest write first: path -> (mtime, size)
        self._files: OrderedDict[Path, tuple[float, int]] = OrderedDict()
        self._bytes = 0
        self._scan()

    def _scan(self) -> None:
        found = []
        for path in self.root.glob("??/*"):
            if path.name.startswith(".tmp-"):
                path.unlink(missing_ok=True)  # left by a writer that died mid-write
                continue
            stat = path.stat()
            found.append((stat.st_mtime, path, stat.st_size))
        for mtime, path, size in sorted(found):
            self._files[path] = (mtime, size)
            self._bytes += size
        metrics.STORE_BYTES.set(self._bytes)

    @property
    def bytes_stored(self) -> int:
        return self._bytes

    def _path(self, blob_id: str) -> Path:
        return self.root / blob_id[:2] / blob_id

    def _put(self, blob_id: str, data: bytes) -> None:
        path = self._path(blob_id)
        with self._lock:
            if path in self._files and path.exists():
                os.utime(path)  # stored again: it counts as new for eviction
                self._files.move_to_end(path)
                self._files[path] = (time.time(), self._files[path][1])
                return
        self._write(path, data)

    def _get(self, blob_id: str) -> bytes | None:
        try:
            return self._path(blob_id).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as error:
            metrics.STORE_ERRORS.labels("get", "os_error").inc()
            raise StoreUnavailable(f"cannot read blob {blob_id}: {error.strerror}") from error

    def _put_metadata(self, blob_id: str, body: bytes) -> None:
        self._write(self._path(blob_id).with_suffix(".json"), body)

    def _get_metadata(self, blob_id: str) -> bytes | None:
        try:
            return self._path(blob_id).with_suffix(".json").read_bytes()
        except FileNotFoundError:
            return None

    def _write(self, path: Path, data: bytes) -> None:
        with self._lock:
            self._make_room(len(data), keep=path)
            try:
                _write_atomically(path, data)
            except OSError as error:
                code = "no_room" if error.errno in _NO_ROOM else "os_error"
                metrics.STORE_ERRORS.labels("put", code).inc()
                if error.errno in _NO_ROOM:
                    raise StoreFull(f"the blob directory has no room for {len(data)} bytes") from error
                raise StoreUnavailable(f"cannot write to the blob directory: {error.strerror}") from error
            old = self._files.pop(path, None)
            self._bytes += len(data) - (old[1] if old else 0)
            self._files[path] = (time.time(), len(data))
            metrics.STORE_BYTES.set(self._bytes)

    def _make_room(self, size: int, keep: Path) -> None:
        """Evict the oldest files (and those past the age limit) so ``size`` more bytes fit the cap."""
        if self.max_bytes and size > self.max_bytes:
            metrics.STORE_ERRORS.labels("put", "over_cap").inc()
            raise StoreFull(f"{size} bytes do not fit the blob directory's cap of {self.max_bytes} bytes")
        oldest_kept = time.time() - self.max_age_seconds if self.max_age_seconds else None
        current = self._files.get(keep, (0.0, 0))[1]
        for path, (mtime, _) in list(self._files.items()):
            over_cap = self.max_bytes and self._bytes - current + size > self.max_bytes
            too_old = oldest_kept is not None and mtime < oldest_kept
            if not (over_cap or too_old):
                break
            if path != keep:
                self._evict(path, "size" if over_cap else "age")

    def _evict(self, path: Path, reason: str) -> None:
        """Remove ``path`` and, for a blob, its metadata document: a ladder without its blob is no use."""
        for victim in (path, path.with_suffix(".json")) if not path.suffix else (path,):
            entry = self._files.pop(victim, None)
            if entry is not None:
                victim.unlink(missing_ok=True)
                self._bytes -= entry[1]
                metrics.STORE_EVICTIONS.labels(reason).inc()

    def check(self) -> None:
        if not os.access(self.root, os.W_OK):
            raise StoreUnavailable(f"the blob directory {self.root} is not writable")


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
