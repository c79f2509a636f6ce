"""The behaviour every ObjectStore adapter must show; adapter test classes inherit it and supply `store`."""

from __future__ import annotations

import hashlib
import io
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from shared.objectstore import (
    ChecksumMismatch,
    ObjectLocked,
    ObjectNotFound,
    ObjectStore,
    ObjectStoreError,
    Retention,
    VerifiedBytes,
)

VIETNAMESE = "Quyết định số 123/QĐ-UBND về việc giao nhiệm vụ".encode()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def wait_until(predicate, timeout: float = 10.0, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(interval)


def counting_sha256(monkeypatch, module) -> list[int]:
    """Counts the SHA-256 objects `module` makes (its `hashlib` swapped for a counting stand-in)."""
    made: list[int] = []
    real = hashlib

    class CountingHashlib:
        def __getattr__(self, name):
            return getattr(real, name)

        @staticmethod
        def sha256(*args, **kwargs):
            made.append(1)
            return real.sha256(*args, **kwargs)

    monkeypatch.setattr(module, "hashlib", CountingHashlib())
    return made


class ObjectStoreContract:
    """Subclasses provide a `store` fixture returning a fresh ObjectStore."""

    @pytest.fixture
    def bucket(self, store: ObjectStore) -> str:
        name = f"plain-{uuid.uuid4().hex[:12]}"
        store.ensure_bucket(name)
        return name

    @pytest.fixture
    def lock_bucket(self, store: ObjectStore) -> str:
        name = f"locked-{uuid.uuid4().hex[:12]}"
        store.ensure_bucket(name, object_lock=True)
        return name

    def put(self, store: ObjectStore, bucket: str, key: str, data: bytes = VIETNAMESE, **kwargs):
        return store.put(
            bucket,
            key,
            data,
            size=len(data),
            content_type="text/plain; charset=utf-8",
            sha256=sha(data),
            **kwargs,
        )

    # -- round trip -----------------------------------------------------------------------------------

    def test_put_then_read_returns_the_same_bytes_and_vietnamese_metadata(self, store, bucket):
        key = "văn-bản/2026/quyết định.txt"
        stored = self.put(
            store, bucket, key, metadata={"filename": "Quyết định giao việc.pdf", "issuer": "UBND"}
        )

        assert stored.bucket == bucket and stored.key == key
        assert stored.size == len(VIETNAMESE)
        assert stored.sha256 == sha(VIETNAMESE)
        assert store.read(bucket, key) == VIETNAMESE
        info = store.stat(bucket, key)
        assert info.metadata == {"filename": "Quyết định giao việc.pdf", "issuer": "UBND"}
        assert info.content_type == "text/plain; charset=utf-8"
        assert info.sha256 == sha(VIETNAMESE)
        assert info.retention is None and info.legal_hold is False

    def test_put_accepts_a_binary_stream(self, store, bucket):
        data = bytes(range(256)) * 5000  # larger than one read chunk
        stored = store.put(
            bucket,
            "stream.bin",
            io.BytesIO(data),
            size=len(data),
            content_type="application/pdf",
            sha256=sha(data),
        )
        assert stored.size == len(data)
        assert store.read(bucket, "stream.bin") == data

    def test_open_streams_chunks_that_join_to_the_object(self, store, bucket):
        data = b"x" * (3 * 1024 * 1024 + 17)
        self.put(store, bucket, "big.bin", data)
        with store.open(bucket, "big.bin") as chunks:
            parts = list(chunks)
        assert len(parts) >= 2
        assert b"".join(parts) == data

    def test_open_with_info_yields_what_stat_says_and_the_bytes(self, store, bucket):
        data = b"y" * (2 * 1024 * 1024 + 5)
        stored = self.put(store, bucket, "tài liệu.bin", data, metadata={"filename": "Công văn.pdf"})
        with store.open_with_info(bucket, "tài liệu.bin") as (info, chunks):
            body = b"".join(chunks)
        assert body == data
        assert info == store.stat(bucket, "tài liệu.bin")
        assert (info.size, info.sha256, info.version_id) == (len(data), sha(data), stored.version_id)
        assert info.metadata == {"filename": "Công văn.pdf"}
        assert info.content_type == "text/plain; charset=utf-8"

    def test_open_with_info_of_a_missing_object_raises_object_not_found(self, store, bucket):
        with pytest.raises(ObjectNotFound), store.open_with_info(bucket, "không-có") as (_, chunks):
            list(chunks)

    def test_put_into_a_lock_bucket_returns_what_stat_then_says(self, store, lock_bucket):
        until = datetime.now(UTC) + timedelta(days=2)
        stored = self.put(
            store,
            lock_bucket,
            "records/x",
            metadata={"filename": "Quyết định.pdf"},
            retention=Retention("GOVERNANCE", until),
            legal_hold=True,
        )
        assert stored == store.stat(lock_bucket, "records/x")
        assert stored.retention is not None and abs(stored.retention.retain_until - until) < timedelta(
            seconds=1
        )
        assert stored.legal_hold is True and stored.sha256 == sha(VIETNAMESE)

    def test_list_objects_names_current_objects_under_a_prefix_in_key_order(self, store, bucket):
        self.put(store, bucket, "a/2026/công-văn.txt", b"one")
        self.put(store, bucket, "a/2026/báo-cáo.txt", b"three")
        self.put(store, bucket, "b/other.txt", b"x")
        self.put(store, bucket, "a/gone.txt", b"y")
        store.delete(bucket, "a/gone.txt")
        listed = list(store.list_objects(bucket, "a/"))
        assert [(item.key, item.size) for item in listed] == [
            ("a/2026/báo-cáo.txt", 5),
            ("a/2026/công-văn.txt", 3),
        ]
        assert all(item.last_modified.tzinfo is not None for item in listed)
        assert [item.key for item in store.list_objects(bucket)] == [
            "a/2026/báo-cáo.txt",
            "a/2026/công-văn.txt",
            "b/other.txt",
        ]

    def test_list_objects_of_a_missing_bucket_raises_object_not_found(self, store):
        with pytest.raises(ObjectNotFound):
            list(store.list_objects("no-such-bucket-here"))

    def test_exists_tells_present_from_absent(self, store, bucket):
        self.put(store, bucket, "present")
        assert store.exists(bucket, "present") is True
        assert store.exists(bucket, "absent") is False

    def test_missing_object_raises_object_not_found(self, store, bucket):
        with pytest.raises(ObjectNotFound):
            store.read(bucket, "không-có.txt")
        with pytest.raises(ObjectNotFound):
            store.stat(bucket, "không-có.txt")
        with pytest.raises(ObjectNotFound), store.open(bucket, "không-có.txt") as chunks:
            list(chunks)

    def test_missing_bucket_raises_object_not_found(self, store):
        with pytest.raises(ObjectNotFound):
            store.stat(f"nobucket-{uuid.uuid4().hex[:8]}", "x")

    def test_overwrite_of_unlocked_object_replaces_it(self, store, bucket):
        self.put(store, bucket, "k", b"first")
        self.put(store, bucket, "k", b"second")
        assert store.read(bucket, "k") == b"second"

    def test_delete_removes_an_unlocked_object(self, store, bucket):
        self.put(store, bucket, "k")
        store.delete(bucket, "k")
        assert not store.exists(bucket, "k")

    def test_ensure_bucket_is_idempotent(self, store, bucket, lock_bucket):
        store.ensure_bucket(bucket)
        store.ensure_bucket(lock_bucket, object_lock=True)
        self.put(store, bucket, "still-there")
        store.ensure_bucket(bucket)
        assert store.exists(bucket, "still-there")

    def test_lock_cannot_be_added_to_an_existing_plain_bucket(self, store, bucket):
        with pytest.raises(ObjectStoreError):
            store.ensure_bucket(bucket, object_lock=True)

    @pytest.mark.parametrize("key", ["../escape", "/absolute", "a/../b", "a//b", ""])
    def test_unsafe_keys_are_refused(self, store, bucket, key):
        with pytest.raises(ValueError):
            self.put(store, bucket, key)

    # -- checksums ------------------------------------------------------------------------------------

    def test_checksum_mismatch_is_refused_and_nothing_is_stored(self, store, bucket):
        with pytest.raises(ChecksumMismatch):
            store.put(
                bucket,
                "bad",
                VIETNAMESE,
                size=len(VIETNAMESE),
                content_type="text/plain",
                sha256=sha(b"other"),
            )
        assert not store.exists(bucket, "bad")

    def test_size_mismatch_is_refused(self, store, bucket):
        with pytest.raises(ChecksumMismatch):
            store.put(bucket, "short", b"abc", size=4, content_type="text/plain", sha256=sha(b"abc"))
        assert not store.exists(bucket, "short")

    def test_failed_overwrite_keeps_the_previous_object(self, store, bucket):
        self.put(store, bucket, "k", b"good")
        with pytest.raises(ChecksumMismatch):
            store.put(bucket, "k", b"evil", size=4, content_type="text/plain", sha256=sha(b"good"))
        assert store.read(bucket, "k") == b"good"

    def test_copy_checks_the_checksum_and_keeps_metadata(self, store, bucket, lock_bucket):
        self.put(store, bucket, "src.pdf", metadata={"filename": "Tờ trình.pdf"})
        copied = store.copy(bucket, "src.pdf", lock_bucket, "dst.pdf", sha256=sha(VIETNAMESE))
        assert copied.sha256 == sha(VIETNAMESE)
        assert store.read(lock_bucket, "dst.pdf") == VIETNAMESE
        assert store.stat(lock_bucket, "dst.pdf").metadata == {"filename": "Tờ trình.pdf"}

    def test_copy_with_a_wrong_checksum_is_refused(self, store, bucket):
        self.put(store, bucket, "src")
        with pytest.raises(ChecksumMismatch):
            store.copy(bucket, "src", bucket, "dst", sha256=sha(b"something else"))
        assert not store.exists(bucket, "dst")

    def test_copy_of_a_missing_object_raises_object_not_found(self, store, bucket):
        with pytest.raises(ObjectNotFound):
            store.copy(bucket, "nope", bucket, "dst", sha256=sha(b""))

    # -- object lock ----------------------------------------------------------------------------------

    @pytest.mark.parametrize("mode", ["GOVERNANCE", "COMPLIANCE"])
    def test_retention_blocks_delete_and_overwrite(self, store, lock_bucket, mode):
        until = datetime.now(UTC) + timedelta(hours=1)
        stored = self.put(store, lock_bucket, "record", retention=Retention(mode, until))
        assert stored.retention is not None and stored.retention.mode == mode
        assert abs((stored.retention.retain_until - until).total_seconds()) < 1

        with pytest.raises(ObjectLocked):
            store.delete(lock_bucket, "record")
        with pytest.raises(ObjectLocked):
            self.put(store, lock_bucket, "record", b"replacement")
        assert store.read(lock_bucket, "record") == VIETNAMESE

    def test_compliance_retention_cannot_be_shortened_even_with_bypass(self, store, lock_bucket):
        until = datetime.now(UTC) + timedelta(hours=1)
        self.put(store, lock_bucket, "r", retention=Retention("COMPLIANCE", until))
        with pytest.raises(ObjectLocked):
            store.set_retention(
                lock_bucket,
                "r",
                Retention("COMPLIANCE", until - timedelta(minutes=30)),
                bypass_governance=True,
            )
        with pytest.raises(ObjectLocked):
            store.set_retention(lock_bucket, "r", None, bypass_governance=True)
        longer = until + timedelta(hours=1)
        store.set_retention(lock_bucket, "r", Retention("COMPLIANCE", longer))
        retention = store.stat(lock_bucket, "r").retention
        assert retention is not None and abs((retention.retain_until - longer).total_seconds()) < 1

    def test_governance_retention_is_shortened_only_with_bypass(self, store, lock_bucket):
        until = datetime.now(UTC) + timedelta(hours=1)
        self.put(store, lock_bucket, "g", retention=Retention("GOVERNANCE", until))
        with pytest.raises(ObjectLocked):
            store.set_retention(lock_bucket, "g", None)
        store.set_retention(lock_bucket, "g", None, bypass_governance=True)
        assert store.stat(lock_bucket, "g").retention is None
        store.delete(lock_bucket, "g")
        assert not store.exists(lock_bucket, "g")

    def test_legal_hold_blocks_delete_until_lifted_and_retention_is_over(self, store, lock_bucket):
        until = datetime.now(UTC) + timedelta(seconds=1.2)
        self.put(store, lock_bucket, "held", retention=Retention("GOVERNANCE", until), legal_hold=True)
        assert store.stat(lock_bucket, "held").legal_hold is True
        with pytest.raises(ObjectLocked):
            store.delete(lock_bucket, "held")

        store.set_legal_hold(lock_bucket, "held", False)
        assert store.stat(lock_bucket, "held").legal_hold is False
        with pytest.raises(ObjectLocked):  # retention still runs
            store.delete(lock_bucket, "held")

        wait_until(lambda: datetime.now(UTC) > until + timedelta(milliseconds=50))
        store.delete(lock_bucket, "held")
        assert not store.exists(lock_bucket, "held")

    def test_legal_hold_alone_blocks_delete(self, store, lock_bucket):
        self.put(store, lock_bucket, "hold-only")
        store.set_legal_hold(lock_bucket, "hold-only", True)
        with pytest.raises(ObjectLocked):
            store.delete(lock_bucket, "hold-only")
        store.set_legal_hold(lock_bucket, "hold-only", False)
        store.delete(lock_bucket, "hold-only")
        assert not store.exists(lock_bucket, "hold-only")

    def test_copy_into_a_lock_bucket_applies_retention_and_legal_hold(self, store, bucket, lock_bucket):
        self.put(store, bucket, "staged")
        until = datetime.now(UTC) + timedelta(days=1)
        copied = store.copy(
            bucket,
            "staged",
            lock_bucket,
            "archived",
            sha256=sha(VIETNAMESE),
            retention=Retention("COMPLIANCE", until),
            legal_hold=True,
        )
        assert copied.retention is not None and copied.retention.mode == "COMPLIANCE"
        assert copied.legal_hold is True
        with pytest.raises(ObjectLocked):
            store.delete(lock_bucket, "archived")

    def test_retention_needs_a_lock_bucket(self, store, bucket):
        with pytest.raises(ObjectStoreError):
            self.put(
                store, bucket, "r", retention=Retention("GOVERNANCE", datetime.now(UTC) + timedelta(hours=1))
            )

    def test_ping_succeeds_on_a_working_store(self, store):
        store.ping()

    # -- verified reads handed to put -------------------------------------------------------------------

    def test_read_all_gives_verified_bytes_that_put_stores_as_they_are(self, store, bucket, lock_bucket):
        data = bytes(range(256)) * 9000  # several read chunks
        self.put(store, bucket, "staged.pdf", data, metadata={"filename": "Công văn.pdf"})
        with store.open_with_info(bucket, "staged.pdf") as (info, chunks):
            verified = chunks.read_all()
        assert isinstance(verified, VerifiedBytes)
        assert verified.data == data and verified.sha256 == sha(data) == info.sha256

        until = datetime.now(UTC) + timedelta(days=1)
        stored = store.put(
            lock_bucket,
            "records/staged.pdf",
            verified,
            size=info.size,
            content_type="application/pdf",
            sha256=sha(data),
            retention=Retention("GOVERNANCE", until),
        )
        assert stored.sha256 == sha(data) and stored.size == len(data)
        assert store.read(lock_bucket, "records/staged.pdf") == data
        with pytest.raises(ObjectLocked):  # the lock rules are the same whatever the body's type
            store.put(
                lock_bucket,
                "records/staged.pdf",
                verified,
                size=len(data),
                content_type="application/pdf",
                sha256=sha(data),
            )

    def test_verified_bytes_declared_with_another_sha256_or_size_are_refused(self, store, bucket):
        verified = VerifiedBytes(VIETNAMESE)
        with pytest.raises(ChecksumMismatch):
            store.put(
                bucket,
                "wrong-sha",
                verified,
                size=len(VIETNAMESE),
                content_type="text/plain",
                sha256=sha(b"x"),
            )
        with pytest.raises(ChecksumMismatch):
            store.put(
                bucket,
                "wrong-size",
                verified,
                size=len(VIETNAMESE) + 1,
                content_type="text/plain",
                sha256=sha(VIETNAMESE),
            )
        assert not store.exists(bucket, "wrong-sha") and not store.exists(bucket, "wrong-size")

    def test_read_all_needs_the_stream_from_its_first_chunk(self, store, bucket):
        data = b"z" * (2 * 1024 * 1024 + 1)
        self.put(store, bucket, "k", data)
        with store.open(bucket, "k") as chunks:
            next(chunks)
            with pytest.raises(ValueError, match="first chunk"):
                chunks.read_all()
