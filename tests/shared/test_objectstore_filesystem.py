"""FilesystemStore: the shared object-store contract plus what only a local directory can show."""

from __future__ import annotations

import hashlib
import os
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from objectstore_contract import VIETNAMESE, ObjectStoreContract, counting_sha256, sha
from shared.objectstore import (
    ChecksumMismatch,
    FilesystemStore,
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
    data_file = tmp_path / "docs" / "data" / "a" / "b.txt"
    assert stat.S_IMODE(data_file.stat().st_mode) == 0o444


def test_new_directories_are_made_durable_in_their_parents(tmp_path, monkeypatch):
    from shared.objectstore import filesystem

    synced: list[Path] = []
    real = filesystem._fsync_dir
    monkeypatch.setattr(filesystem, "_fsync_dir", lambda d: (synced.append(Path(d)), real(d)))
    store = FilesystemStore(tmp_path)
    store.ensure_bucket("docs")
    synced.clear()
    store.put(
        "docs",
        "directives/d-1/x",
        VIETNAMESE,
        size=len(VIETNAMESE),
        content_type="text/plain",
        sha256=sha(VIETNAMESE),
    )
    data = tmp_path / "docs" / "data"
    # Each directory created for the key has its entry synced in its parent, then the file's rename too.
    assert data in synced and data / "directives" in synced and data / "directives" / "d-1" in synced
    synced.clear()
    store.put(
        "docs",
        "directives/d-1/y",
        VIETNAMESE,
        size=len(VIETNAMESE),
        content_type="text/plain",
        sha256=sha(VIETNAMESE),
    )
    assert data / "directives" not in synced  # nothing new to make durable above the file's own directory


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
    sidecar = (tmp_path / "docs" / "meta" / "k.json").read_text(encoding="utf-8")
    assert "Công văn" in sidecar


def test_bit_rot_is_detected_on_read(tmp_path):
    store = FilesystemStore(tmp_path)
    store.ensure_bucket("docs")
    store.put("docs", "k", b"original", size=8, content_type="text/plain", sha256=sha(b"original"))
    data_file = tmp_path / "docs" / "data" / "k"
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


def test_key_that_collides_with_a_directory_path_is_an_object_store_error(tmp_path):
    store = FilesystemStore(tmp_path)
    store.ensure_bucket("docs")
    store.put("docs", "a", b"x", size=1, content_type="text/plain", sha256=sha(b"x"))
    with pytest.raises(ObjectStoreError):
        store.put("docs", "a/b", b"x", size=1, content_type="text/plain", sha256=sha(b"x"))
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
