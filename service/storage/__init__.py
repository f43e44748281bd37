"""Where bitstreams, decoded images and uploads of queued jobs live: a local directory or S3."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

from service.storage.base import BlobStore, CorruptBlob, StoreFull, StoreUnavailable
from service.storage.directory import DirectoryBlobStore

__all__ = [
    "BlobStore",
    "CorruptBlob",
    "DirectoryBlobStore",
    "StoreFull",
    "StoreUnavailable",
    "open_blob_store",
]


def open_blob_store(
    url: str,
    default_dir: Path,
    *,
    s3_endpoint_url: str = "",
    max_bytes: int = 0,
    max_age_seconds: float = 0.0,
) -> BlobStore:
    """The store ``url`` names: ``s3://bucket/prefix``, ``file:///path``, or (empty) ``default_dir``."""
    if url.startswith("s3://"):
        from service.storage.s3 import S3BlobStore  # boto3 loads only where S3 is used

        return S3BlobStore(url, s3_endpoint_url)
    if url and not url.startswith("file://"):
        raise ValueError(f"RGIC_BLOB_URL {url!r}: use s3://bucket/prefix or file:///path")
    root = Path(urlparse(url).path) if url else default_dir
    return DirectoryBlobStore(root, max_bytes=max_bytes, max_age_seconds=max_age_seconds)
