"""FilesystemStore: the shared object-store contract plus what only a local directory can show."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from objectstore_contract import VIETNAMESE, ObjectStoreContract, counting_sha256, sha
from shared.objectstore import (
    ChecksumMismatch,
    FilesystemStore,
    ObjectLocked,
    ObjectStore,
    ObjectStoreError,
    S3Store,
    StoreUnavailable,
    make_store,
)
from shared.settings import CommonSettings


class TestFilesystemStore(ObjectStoreContract):
    @pytest.fixture
    def store(self, tmp_path: Path) -> FilesystemStore:
        return FilesystemStore(tmp_path / "objects")


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def test_stored_files_are_read_only(tmp_path):
    store = FilesystemStore(tmp_path)
    store.ensure_bucket("docs")
    store.put(
        "docs", "a/b.txt", VIETNAMESE, size=len(VIETNAMESE), content_type="text/plain", sha256=sha(VIETNAMESE)
    )
    data_file, _ = store._paths("docs", "a/b.txt")
    assert stat.S_IMODE(data_file.stat().st_mode) == 0o400  # read-only and readable by no other account
    folder = data_file.parent
    while folder != tmp_path:
        assert stat.S_IMODE(folder.stat().st_mode) & 0o077 == 0, folder
        folder = folder.parent


def _same_fan_out_keys(count: int) -> list[str]:
    """Keys whose objects share one fan-out folder (the first two hex digits of the key's name)."""
    keys = [f"directives/d-{i}/x" for i in range(2000)]
    by_folder: dict[str, list[str]] = {}
    for key in keys:
        by_folder.setdefault(hashlib.blake2b(key.encode(), digest_size=16).hexdigest()[:2], []).append(key)
    return next(group for group in by_folder.values() if len(group) >= count)[:count]


def _legacy_bucket(root: Path, bucket: str, *, object_lock: bool = False) -> None:
    """A bucket as stores before layout 2 made it: data/ and meta/, a config without "layout"."""
    (root / bucket / "data").mkdir(parents=True)
    (root / bucket / "meta").mkdir()
    (root / bucket / ".docroute-bucket.json").write_text(
        json.dumps({"object_lock": object_lock, "created_at": "2026-01-05T01:00:00+00:00"}), encoding="utf-8"
    )


def _put(store: FilesystemStore, bucket: str, key: str, data: bytes = VIETNAMESE) -> None:
    store.put(bucket, key, data, size=len(data), content_type="text/plain", sha256=sha(data))


def test_a_new_key_costs_three_fsyncs_and_no_new_folder_once_its_fan_out_folder_exists(tmp_path, monkeypatch):
    from shared.objectstore import filesystem

    store = FilesystemStore(tmp_path)
    store.ensure_bucket("docs")
    assert json.loads((tmp_path / "docs" / ".docroute-bucket.json").read_text())["layout"] == 2
    first, second = _same_fan_out_keys(2)
    synced: list[Path] = []
    real = filesystem._fsync_dir
    monkeypatch.setattr(filesystem, "_fsync_dir", lambda d: (synced.append(Path(d)), real(d)))
    _put(store, "docs", first)
    folder = store._paths("docs", first)[0].parent
    # The fan-out folder is new: its entry is synced in its parent, then the folder itself after the renames.
    assert synced == [folder.parent, folder]
    fsyncs: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(filesystem.os, "fsync", lambda fd: (fsyncs.append(fd), real_fsync(fd)))
    synced.clear()
    _put(store, "docs", second)
    assert synced == [folder]  # the object's bytes and sidecar share that folder: one directory sync
    assert len(fsyncs) == 3  # bytes, sidecar, folder
    monkeypatch.undo()
    assert store.read("docs", first) == VIETNAMESE and store.read("docs", second) == VIETNAMESE
    assert [p.name for p in (tmp_path / "docs").iterdir() if p.is_dir()] == ["objects"]


def test_a_bucket_made_before_layout_2_keeps_its_layout(tmp_path, monkeypatch):
    from shared.objectstore import filesystem

    _legacy_bucket(tmp_path, "old", object_lock=True)
    (tmp_path / "old" / "data" / "directives" / "d-0").mkdir(parents=True)
    (tmp_path / "old" / "data" / "directives" / "d-0" / "x").write_bytes(b"kept")
    (tmp_path / "old" / "meta" / "directives" / "d-0").mkdir(parents=True)
    (tmp_path / "old" / "meta" / "directives" / "d-0" / "x.json").write_text(
        json.dumps(
            {
                "key": "directives/d-0/x",
                "size": 4,
                "sha256": sha(b"kept"),
                "content_type": "text/plain",
                "version_id": "v0",
                "metadata": {"title": "Công văn"},
                "retention": None,
                "legal_hold": True,
                "created_at": "2026-01-05T01:00:00+00:00",
            }
        ),
        encoding="utf-8",
    )
    store = FilesystemStore(tmp_path)
    store.ensure_bucket("old", object_lock=True)  # found as it is, not converted
    assert store.read("old", "directives/d-0/x") == b"kept"
    assert store.stat("old", "directives/d-0/x").metadata == {"title": "Công văn"}
    with pytest.raises(ObjectLocked):
        _put(store, "old", "directives/d-0/x")
    synced: list[Path] = []
    real = filesystem._fsync_dir
    monkeypatch.setattr(filesystem, "_fsync_dir", lambda d: (synced.append(Path(d)), real(d)))
    _put(store, "old", "directives/d-1/x")
    data, meta = tmp_path / "old" / "data", tmp_path / "old" / "meta"
    assert (data / "directives" / "d-1" / "x").read_bytes() == VIETNAMESE
    assert (meta / "directives" / "d-1" / "x.json").is_file()
    # Each folder made for the key is synced in its parent, then the two folders of the renames.
    assert synced == [
        data / "directives",
        meta / "directives",
        data / "directives" / "d-1",
        meta / "directives" / "d-1",
    ]
    assert not (tmp_path / "old" / "objects").exists()


def test_checksum_mismatch_leaves_no_temp_files(tmp_path):
    store = FilesystemStore(tmp_path)
    store.ensure_bucket("docs")
    before = _files(tmp_path)
    with pytest.raises(ChecksumMismatch):
        store.put("docs", "x", b"data", size=4, content_type="text/plain", sha256=sha(b"other"))
    assert _files(tmp_path) == before


def test_sidecar_keeps_vietnamese_readable(tmp_path):
    store = FilesystemStore(tmp_path)
    store.ensure_bucket("docs")
    store.put(
        "docs", "k", b"x", size=1, content_type="text/plain", sha256=sha(b"x"), metadata={"title": "Công văn"}
    )
    sidecar = store._paths("docs", "k")[1].read_text(encoding="utf-8")
    assert "Công văn" in sidecar
    assert json.loads(sidecar)["key"] == "k"  # a hashed file name is traced back to its key by its sidecar


def test_bit_rot_is_detected_on_read(tmp_path):
    store = FilesystemStore(tmp_path)
    store.ensure_bucket("docs")
    store.put("docs", "k", b"original", size=8, content_type="text/plain", sha256=sha(b"original"))
    data_file, _ = store._paths("docs", "k")
    os.chmod(data_file, 0o644)
    data_file.write_bytes(b"tampered")
    with pytest.raises(ChecksumMismatch):
        store.read("docs", "k")
    with pytest.raises(ChecksumMismatch):
        store.copy("docs", "k", "docs", "copy", sha256=hashlib.sha256(b"original").hexdigest())
    with pytest.raises(ChecksumMismatch), store.open_with_info("docs", "k") as (info, chunks):
        assert info.sha256 == sha(b"original")
        b"".join(chunks)
    with pytest.raises(ChecksumMismatch), store.open("docs", "k") as chunks:
        chunks.read_all()  # rotten bytes never become VerifiedBytes


def test_a_put_of_verified_bytes_writes_them_without_hashing_them_again(tmp_path, monkeypatch):
    from shared.objectstore import filesystem

    store = FilesystemStore(tmp_path)
    store.ensure_bucket("docs")
    data = VIETNAMESE * 1000
    store.put("docs", "a", data, size=len(data), content_type="text/plain", sha256=sha(data))
    with store.open("docs", "a") as chunks:
        verified = chunks.read_all()
    made = counting_sha256(monkeypatch, filesystem)

    store.put("docs", "b", verified, size=len(data), content_type="text/plain", sha256=sha(data))
    assert made == []
    store.put("docs", "c", data, size=len(data), content_type="text/plain", sha256=sha(data))
    assert made == [1]  # plain bytes are still hashed while written

    monkeypatch.undo()
    assert store.read("docs", "b") == data and store.stat("docs", "b").sha256 == sha(data)


def test_ping_fails_when_the_root_cannot_be_created(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(StoreUnavailable):
        FilesystemStore(blocker / "objects").ping()


def test_make_store_picks_the_filesystem_without_an_endpoint(tmp_path):
    settings = CommonSettings.from_env({"DOCROUTE_DATA_DIR": str(tmp_path), "DOCROUTE_JWT_SECRET": "x" * 32})
    store = make_store(settings)
    assert isinstance(store, FilesystemStore)
    assert store.root == tmp_path / "objects"


def test_make_store_picks_s3_with_an_endpoint(tmp_path):
    settings = CommonSettings.from_env(
        {
            "DOCROUTE_DATA_DIR": str(tmp_path),
            "DOCROUTE_JWT_SECRET": "x" * 32,
            "DOCROUTE_S3_ENDPOINT": "127.0.0.1:9",
            "DOCROUTE_S3_ACCESS_KEY": "ak",
            "DOCROUTE_S3_SECRET_KEY": "sk",
        }
    )
    store = make_store(settings)
    assert isinstance(store, S3Store)
    assert isinstance(store, ObjectStore)


def test_a_key_and_a_key_below_it_are_two_objects_as_in_s3(tmp_path):
    store = FilesystemStore(tmp_path)
    store.ensure_bucket("docs")
    _put(store, "docs", "a", b"x")
    _put(store, "docs", "a/b", b"y")
    assert store.read("docs", "a") == b"x" and store.read("docs", "a/b") == b"y"


def test_in_a_layout_1_bucket_a_key_that_collides_with_a_folder_is_an_object_store_error(tmp_path):
    _legacy_bucket(tmp_path, "docs")
    store = FilesystemStore(tmp_path)
    _put(store, "docs", "a", b"x")
    with pytest.raises(ObjectStoreError):
        _put(store, "docs", "a/b", b"x")
    assert store.read("docs", "a") == b"x"


def test_concurrent_writers_leave_one_complete_object(tmp_path):
    store = FilesystemStore(tmp_path)
    store.ensure_bucket("docs")
    payloads = [bytes([i]) * 200_000 for i in range(8)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(
            pool.map(
                lambda d: store.put("docs", "k", d, size=len(d), content_type="x/y", sha256=sha(d)), payloads
            )
        )
    stored = store.stat("docs", "k")
    assert store.read("docs", "k") in payloads
    assert stored.sha256 == sha(store.read("docs", "k"))
    assert not list((tmp_path / "docs").rglob(".tmp-*"))


def test_a_forked_child_takes_the_bucket_lock_against_its_parent(tmp_path):
    """The lock file stays open per process; a child must not inherit the parent's descriptor, or flock
    (which belongs to the open file description) would let both hold the lock at once."""
    import fcntl

    store = FilesystemStore(tmp_path)
    store.ensure_bucket("docs")
    store.put("docs", "k", b"x", size=1, content_type="text/plain", sha256=sha(b"x"))
    taken_r, taken_w = os.pipe()
    release_r, release_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: hold the bucket lock until the parent has tried to take it
        try:
            with store._exclusive("docs"):
                os.write(taken_w, b"1")
                os.read(release_r, 1)
        finally:
            os._exit(0)
    try:
        assert os.read(taken_r, 1) == b"1"
        parent_fd = store._lock_file("docs")
        with pytest.raises(BlockingIOError):
            fcntl.flock(parent_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        os.write(release_w, b"1")
        os.waitpid(pid, 0)
    fcntl.flock(parent_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # free again once the child let go
    fcntl.flock(parent_fd, fcntl.LOCK_UN)


def test_a_bucket_config_is_read_once_per_store(tmp_path, monkeypatch):
    store = FilesystemStore(tmp_path)
    store.ensure_bucket("docs", object_lock=True)
    reads = []
    original = Path.read_text

    def counting(self, *args, **kwargs):
        reads.append(self.name)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", counting)
    for i in range(3):
        store.put("docs", f"k{i}", b"x", size=1, content_type="text/plain", sha256=sha(b"x"))
    assert reads.count(".docroute-bucket.json") <= 1
    assert FilesystemStore(tmp_path).stat("docs", "k2").sha256 == sha(b"x")
