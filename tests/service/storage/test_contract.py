"""What every blob store promises, checked on the directory and on a real S3 server (SeaweedFS):
round trips, idempotent puts, verified reads, bad and absent ids, metadata bound to its blob."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from service.errors import NotFound
from service.storage import BlobStore, CorruptBlob, DirectoryBlobStore
from service.storage.s3 import S3BlobStore
from tests.real_servers import S3Server, s3_server


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    with s3_server(tmp_path_factory.mktemp("s3")) as server:
        yield server


@pytest.fixture(params=["directory", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> BlobStore:
    if request.param == "directory":
        return DirectoryBlobStore(tmp_path / "blobs")
    server: S3Server = request.getfixturevalue("s3")
    for key, value in server.environment().items():
        monkeypatch.setenv(key, value)
    return S3BlobStore(f"s3://{server.bucket}/{tmp_path.name}", server.endpoint)


def test_put_get_round_trip_and_idempotence(store: BlobStore) -> None:
    blob_id = store.put(b"hello")
    assert store.put(b"hello") == blob_id == BlobStore.blob_id(b"hello")
    assert store.get(blob_id) == b"hello"
    big = bytes(range(256)) * 40_000
    assert store.get(store.put(big)) == big


@pytest.mark.parametrize("bad", ["../../etc/passwd", "a" * 63, "A" * 64, "..", "%2e%2e", "0" * 64 + "/x"])
def test_bad_ids_are_not_found(store: BlobStore, bad: str) -> None:
    with pytest.raises(NotFound):
        store.get(bad)
    with pytest.raises(NotFound):
        store.get_metadata(bad)


def test_absent_ids_are_not_found(store: BlobStore) -> None:
    with pytest.raises(NotFound):
        store.get("0" * 64)
    assert store.get_metadata("0" * 64) is None


def test_metadata_is_bound_to_its_blob(store: BlobStore) -> None:
    blob_id = store.put(b"bitstream")
    store.put_metadata(blob_id, {"ladder": [1, 2]})
    store.put_metadata(blob_id, {"ladder": [1, 2, 3]})  # replaced
    assert store.get_metadata(blob_id) == {"blob": blob_id, "ladder": [1, 2, 3]}


def test_an_altered_blob_fails_its_checksum(store: BlobStore) -> None:
    blob_id = store.put(b"payload")
    store._put_metadata(blob_id, b"{}")  # a document that names no blob
    with pytest.raises(CorruptBlob):
        store.get_metadata(blob_id)
    if isinstance(store, S3BlobStore):  # overwrite the object behind the store's back
        store.client.put_object(Bucket=store.bucket, Key=store._key(blob_id), Body=b"tampered")
    else:
        (store.root / blob_id[:2] / blob_id).write_bytes(b"tampered")
    with pytest.raises(CorruptBlob):
        store.get(blob_id)
    store.put(b"payload")  # content addressing: already there, so the put does not repair it
    with pytest.raises(CorruptBlob):
        store.get(blob_id)


def test_s3_refuses_a_wrong_secret(s3: S3Server, monkeypatch: pytest.MonkeyPatch) -> None:
    from service.storage import StoreUnavailable

    for key, value in s3.environment(secret="not-the-secret").items():
        monkeypatch.setenv(key, value)
    store = S3BlobStore(f"s3://{s3.bucket}/x", s3.endpoint)
    with pytest.raises(StoreUnavailable, match="SignatureDoesNotMatch"):
        store.put(b"x")
    with pytest.raises(StoreUnavailable):
        store.get("0" * 64)


def test_s3_unreachable_is_unavailable_not_absent() -> None:
    from service.storage import StoreUnavailable

    store = S3BlobStore("s3://b/p", "http://127.0.0.1:9", timeout_seconds=1)
    with pytest.raises(StoreUnavailable):
        store.get("0" * 64)
