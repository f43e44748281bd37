import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from service.errors import NotFound
from service.storage import CorruptBlob
from service.storage import DirectoryBlobStore as BlobStore


def test_put_get_round_trip_and_idempotence(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    blob_id = store.put(b"hello")
    assert store.put(b"hello") == blob_id
    assert store.get(blob_id) == b"hello"


@pytest.mark.parametrize("bad", ["../../etc/passwd", "a" * 63, "A" * 64, "..", "%2e%2e", "0" * 64 + "/x"])
def test_ids_cannot_escape_the_store(tmp_path: Path, bad: str) -> None:
    with pytest.raises(NotFound):
        BlobStore(tmp_path / "store").get(bad)


def test_altered_blob_fails_its_checksum(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    blob_id = store.put(b"payload")
    (tmp_path / blob_id[:2] / blob_id).write_bytes(b"tampered")
    with pytest.raises(CorruptBlob):
        store.get(blob_id)


def test_writer_killed_mid_write_leaves_no_partial_blob(tmp_path: Path) -> None:
    # A child process writes a large blob through BlobStore and is killed while writing.
    script = (
        "import sys; from pathlib import Path; from service.storage import DirectoryBlobStore as BlobStore\n"
        "store = BlobStore(Path(sys.argv[1]))\n"
        "print('ready', flush=True)\n"
        "while True: store.put(bytes(200_000_000) + sys.argv[2].encode())\n"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", script, str(tmp_path), "x"],
        stdout=subprocess.PIPE,
        cwd=Path(__file__).parents[3],
    )
    assert child.stdout.readline().strip() == b"ready"
    deadline = time.monotonic() + 20
    while not any(p.name.startswith(".tmp-") for p in tmp_path.rglob("*")) and time.monotonic() < deadline:
        time.sleep(0.005)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    store = BlobStore(tmp_path)
    finished = [p for p in tmp_path.rglob("*") if p.is_file() and not p.name.startswith(".tmp-")]
    for path in finished:  # whatever was renamed into place is whole: its content matches its id
        assert store.get(path.name)
