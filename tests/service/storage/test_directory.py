import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from service.errors import NotFound
from service.storage import CorruptBlob, DirectoryBlobStore, StoreFull
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


def _bytes_on_disk(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def test_a_burst_never_passes_the_cap_and_the_newest_blobs_stay(tmp_path: Path) -> None:
    import threading

    store = DirectoryBlobStore(tmp_path, max_bytes=20_000)
    peak = [0]
    done = threading.Event()

    def watch() -> None:  # between writes (a scan while files come and go would count some twice)
        while not done.wait(0.002):  # the pause lets the writers take the lock: it is not fair
            with store._lock:
                peak[0] = max(peak[0], _bytes_on_disk(tmp_path))

    def burst(worker: int) -> list[str]:
        return [store.put(f"{worker}-{i}".encode() * (100 + 37 * i)) for i in range(25)]

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        with ThreadPoolExecutor(8) as pool:
            written = list(pool.map(burst, range(8)))
    finally:
        done.set()
        watcher.join()
    assert peak[0] <= 20_000 and _bytes_on_disk(tmp_path) == store.bytes_stored <= 20_000
    survivors = [p.name for p in tmp_path.rglob("*") if p.is_file()]
    assert 0 < len(survivors) < 200  # the oldest went
    for name in survivors:  # what is left is whole
        assert store.get(name)
    assert not {ids[0] for ids in written} & set(survivors)  # the first blobs were the first evicted
    last = store.put(b"after the burst" * 100)
    assert store.get(last) and _bytes_on_disk(tmp_path) <= 20_000


def test_old_blobs_are_evicted_and_a_reopened_store_counts_what_is_there(tmp_path: Path) -> None:
    store = DirectoryBlobStore(tmp_path, max_age_seconds=3600)
    old = store.put(b"old")
    path = tmp_path / old[:2] / old
    os.utime(path, (time.time() - 7200, time.time() - 7200))
    reopened = DirectoryBlobStore(tmp_path, max_age_seconds=3600)
    assert reopened.bytes_stored == 3
    new = reopened.put(b"new")
    with pytest.raises(NotFound):
        reopened.get(old)
    assert reopened.get(new) == b"new" and reopened.bytes_stored == 3


def test_a_blob_bigger_than_the_cap_is_refused_and_nothing_changes(tmp_path: Path) -> None:
    store = DirectoryBlobStore(tmp_path, max_bytes=1000)
    kept = store.put(b"k" * 600)
    with pytest.raises(StoreFull) as refused:
        store.put(b"x" * 1001)
    assert refused.value.status == 507
    assert store.get(kept) == b"k" * 600 and _bytes_on_disk(tmp_path) == 600


def test_a_disk_that_refuses_the_write_answers_507_and_leaves_no_part(tmp_path: Path) -> None:
    # The kernel refuses writes past RLIMIT_FSIZE (EFBIG), as a full disk does (ENOSPC): in a child.
    script = (
        "import resource, signal, sys; from pathlib import Path\n"
        "from service.storage import DirectoryBlobStore, StoreFull\n"
        "store = DirectoryBlobStore(Path(sys.argv[1]))\n"
        "kept = store.put(b'small')\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))\n"
        "try:\n    store.put(bytes(1_000_000))\nexcept StoreFull as e:\n    print('refused', e.status)\n"
        "print('kept', store.get(kept) == b'small')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=Path(__file__).parents[3],
        timeout=120,
    )
    assert out.stdout.split() == ["refused", "507", "kept", "True"], out.stderr[-2000:]
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == [BlobStore.blob_id(b"small")]
