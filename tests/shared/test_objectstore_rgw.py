"""S3Store against a real Ceph RADOS Gateway (16, Pacific): the shared contract, what the probe learns of
RGW, and the guarantees RGW leaves to the adapter (no second version, refused corrupted uploads)."""

from __future__ import annotations

import base64
import hashlib
import threading
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from minio import Minio
from minio.error import S3Error
from objectstore_contract import ObjectStoreContract, sha
from shared.db import make_engine
from shared.objectstore import (
    AdvisoryKeyLock,
    ChecksumMismatch,
    ObjectLocked,
    Retention,
    S3Store,
    StoreCapabilities,
    StoredObject,
    StoreLacksCapability,
    WritePlan,
)
from shared.objectstore.s3 import parse_timestamp

pytestmark = pytest.mark.integration

# What RGW 16 was seen to do (docs/operations.md lists it): no conditional PUT on versioned buckets, checksum
# headers ignored, Content-MD5 checked, object lock honoured on PutObject, CopyObject conditions ignored; a
# CopyObject answers no SHA-256 of its copy and ignores object-lock headers and If-None-Match.
RGW_16 = StoreCapabilities(
    conditional_put_versioned=False,
    conditional_put_unversioned=True,
    checksum_sha256=False,
    content_md5=True,
    lock_on_put=True,
    retention_enforced=True,
    copy_source_conditions=False,
    copy_checksum_sha256=False,
    copy_lock=False,
    copy_conditional=False,
)


@pytest.fixture(scope="module")
def key_lock(pg_database_factory):
    engine = make_engine(pg_database_factory())
    yield AdvisoryKeyLock(engine)
    engine.dispose()


def rgw_store(rgw, key_lock=None) -> S3Store:
    return S3Store(
        rgw.endpoint, rgw.access_key, rgw.secret_key, secure=False, region=rgw.region, key_lock=key_lock
    )


def raw_client(rgw) -> Minio:
    return Minio(rgw.endpoint, rgw.access_key, rgw.secret_key, secure=False, region=rgw.region)


def versions(rgw, bucket: str, key: str) -> list[str]:
    return [
        str(v.version_id)
        for v in raw_client(rgw).list_objects(bucket, prefix=key, include_version=True)
        if v.object_name == key
    ]


def put_text(store: S3Store, bucket: str, key: str, data: bytes, **kwargs: Any) -> StoredObject:
    """`data` stored as text/plain, with its own size and SHA-256."""
    return store.put(bucket, key, data, size=len(data), content_type="text/plain", sha256=sha(data), **kwargs)


class TestRgwStore(ObjectStoreContract):
    @pytest.fixture
    def store(self, rgw, key_lock) -> S3Store:
        return rgw_store(rgw, key_lock)

    @pytest.mark.skip(
        reason="RGW 16 refuses an empty <Retention> (MalformedXML), so a GOVERNANCE retention cannot be "
        "removed, only shortened with bypass; the adapter reports ObjectStoreError, and the archive never "
        "removes a retention (test_governance_retention_can_be_shortened_with_bypass_on_rgw covers the rest)"
    )
    def test_governance_retention_is_shortened_only_with_bypass(self, store, lock_bucket):
        raise AssertionError("skipped")

    def test_governance_retention_can_be_shortened_with_bypass_on_rgw(self, store, lock_bucket):
        until = datetime.now(UTC) + timedelta(hours=1)
        self.put(store, lock_bucket, "g", retention=Retention("GOVERNANCE", until))
        sooner = datetime.now(UTC) + timedelta(minutes=5)
        with pytest.raises(ObjectLocked):
            store.set_retention(lock_bucket, "g", Retention("GOVERNANCE", sooner))
        store.set_retention(lock_bucket, "g", Retention("GOVERNANCE", sooner), bypass_governance=True)
        retention = store.stat(lock_bucket, "g").retention
        assert retention is not None and abs(retention.retain_until - sooner) < timedelta(seconds=1)


def test_the_probe_learns_what_rgw_does_and_the_plan_answers_it(rgw, key_lock):
    store = rgw_store(rgw, key_lock)
    assert store.capabilities() == RGW_16
    assert store.write_plan(object_lock=True) == WritePlan(
        integrity="content-md5", single_version="key-lock", lock="on-put"
    )
    assert store.write_plan(object_lock=False).integrity == "content-md5"


def test_rgw_cannot_keep_the_guarantees_by_a_server_side_copy_and_the_caller_uploads(rgw, key_lock):
    store = rgw_store(rgw, key_lock)
    staging, archive = f"staging-{uuid.uuid4().hex[:8]}", f"archive-{uuid.uuid4().hex[:8]}"
    store.ensure_bucket(staging)
    store.ensure_bucket(archive, object_lock=True)
    data = "Công văn số 1393/CVT-CL".encode()
    digest = hashlib.sha256(data).hexdigest()
    source = store.put(
        staging, "d/file.pdf", data, size=len(data), content_type="application/pdf", sha256=digest
    )

    assert store.server_copy(source, archive, "records/file.pdf", sha256=digest) is None
    assert not store.exists(archive, "records/file.pdf")


@pytest.mark.integration
def test_without_a_key_lock_a_lock_bucket_is_refused_naming_the_missing_capability(rgw):
    store = rgw_store(rgw)
    with pytest.raises(StoreLacksCapability, match=r"ignores If-None-Match: \* on versioned buckets"):
        store.ensure_bucket(f"locked-{uuid.uuid4().hex[:12]}", object_lock=True)
    # Plain buckets keep every guarantee they have without one.
    plain = f"plain-{uuid.uuid4().hex[:12]}"
    store.ensure_bucket(plain)
    put_text(store, plain, "k", b"x")


def test_a_second_write_of_a_locked_key_leaves_exactly_one_version(rgw, key_lock):
    store = rgw_store(rgw, key_lock)
    bucket = f"locked-{uuid.uuid4().hex[:12]}"
    store.ensure_bucket(bucket, object_lock=True)
    first, second = "Hồ sơ gốc".encode(), "Bản thay thế".encode()
    until = datetime.now(UTC) + timedelta(days=1)
    put_text(store, bucket, "records/a", first, retention=Retention("COMPLIANCE", until))
    with pytest.raises(ObjectLocked):
        put_text(store, bucket, "records/a", second, retention=Retention("COMPLIANCE", until))
    assert len(versions(rgw, bucket, "records/a")) == 1
    assert store.read(bucket, "records/a") == first


def test_concurrent_writers_of_one_key_leave_exactly_one_version(rgw, key_lock):
    bucket = f"locked-{uuid.uuid4().hex[:12]}"
    rgw_store(rgw, key_lock).ensure_bucket(bucket, object_lock=True)
    until = datetime.now(UTC) + timedelta(days=1)
    outcomes: list[str] = []
    start = threading.Barrier(4)

    def write(n: int) -> None:
        data = f"bản {n}".encode()
        store = rgw_store(rgw, key_lock)  # a store each, as separate workers have
        start.wait()
        try:
            put_text(store, bucket, "records/same", data, retention=Retention("GOVERNANCE", until))
            outcomes.append("stored")
        except ObjectLocked:
            outcomes.append("locked")

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(outcomes) == ["locked", "locked", "locked", "stored"]
    assert len(versions(rgw, bucket, "records/same")) == 1


def test_the_same_race_without_the_key_lock_would_stack_versions_on_rgw(rgw):
    """Why the key lock exists: RGW itself takes a conditional PUT over a locked object."""
    client = raw_client(rgw)
    bucket = f"locked-{uuid.uuid4().hex[:12]}"
    client.make_bucket(bucket, object_lock=True)
    data = b"x"
    md5 = base64.b64encode(hashlib.md5(data).digest()).decode()
    for _ in range(2):
        client._execute("PUT", bucket, "k", body=data, headers={"Content-MD5": md5, "If-None-Match": "*"})
    assert len(versions(rgw, bucket, "k")) == 2


@pytest.mark.parametrize("locked", [False, True], ids=["plain", "object-lock"])
def test_a_corrupted_upload_is_refused_and_nothing_is_stored(monkeypatch, rgw, key_lock, locked):
    store = rgw_store(rgw, key_lock)
    bucket = f"{'locked' if locked else 'plain'}-{uuid.uuid4().hex[:12]}"
    store.ensure_bucket(bucket, object_lock=locked)
    data = "Quyết định số 12/QĐ-UBND".encode()
    original = store._client._put_object

    def corrupting(bucket_name, key, body, headers, query_params=None):
        # One byte flipped on the way: the headers still describe the original bytes.
        return original(bucket_name, key, bytes([body[0] ^ 1]) + body[1:], headers, query_params)

    monkeypatch.setattr(store._client, "_put_object", corrupting)
    with pytest.raises(ChecksumMismatch, match="BadDigest"):
        put_text(
            store,
            bucket,
            "records/b",
            data,
            retention=Retention("COMPLIANCE", datetime.now(UTC) + timedelta(days=1)) if locked else None,
        )
    monkeypatch.undo()
    assert versions(rgw, bucket, "records/b") == []


def test_a_locked_record_cannot_be_deleted_or_shortened_even_through_the_raw_api(rgw, key_lock):
    store = rgw_store(rgw, key_lock)
    bucket = f"locked-{uuid.uuid4().hex[:12]}"
    store.ensure_bucket(bucket, object_lock=True)
    data = b"record"
    until = datetime.now(UTC) + timedelta(days=1)
    stored = put_text(
        store, bucket, "records/c", data, retention=Retention("COMPLIANCE", until), legal_hold=True
    )
    with pytest.raises(ObjectLocked):
        store.delete(bucket, "records/c")
    with pytest.raises(ObjectLocked):
        store.set_retention(
            bucket, "records/c", Retention("COMPLIANCE", until - timedelta(hours=1)), bypass_governance=True
        )
    client = raw_client(rgw)
    with pytest.raises(S3Error):
        client._execute(
            "DELETE",
            bucket,
            "records/c",
            query_params={"versionId": str(stored.version_id)},
            headers={"x-amz-bypass-governance-retention": "true"},
        )
    shorter = (until - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    body = (
        '<Retention xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Mode>COMPLIANCE</Mode>'
        f"<RetainUntilDate>{shorter}</RetainUntilDate></Retention>"
    ).encode()
    with pytest.raises(S3Error):
        client._execute(
            "PUT",
            bucket,
            "records/c",
            body=body,
            headers={
                "Content-MD5": base64.b64encode(hashlib.md5(body).digest()).decode(),
                "x-amz-bypass-governance-retention": "true",
            },
            query_params={"retention": "", "versionId": str(stored.version_id)},
        )
    assert store.read(bucket, "records/c") == data
    assert versions(rgw, bucket, "records/c") == [stored.version_id]


def test_retention_dates_with_nanoseconds_are_read_where_minio_py_fails(rgw, key_lock):
    store = rgw_store(rgw, key_lock)
    bucket = f"locked-{uuid.uuid4().hex[:12]}"
    store.ensure_bucket(bucket, object_lock=True)
    until = datetime(2031, 5, 17, 8, 30, 15, tzinfo=UTC)
    put_text(store, bucket, "r", b"x", retention=Retention("GOVERNANCE", until))
    with pytest.raises(ValueError, match="does not match format"):  # minio-py's parser, on RGW's answer
        raw_client(rgw).get_object_retention(bucket, "r")
    retention = store.stat(bucket, "r").retention
    assert retention == Retention("GOVERNANCE", until)
    raw = raw_client(rgw)._execute("GET", bucket, "r", query_params={"retention": ""}).data.decode()
    assert "2031-05-17T08:30:15.000000000Z" in raw
    assert parse_timestamp("2031-05-17T08:30:15.000000000Z") == until


def test_the_key_lock_serialises_writers_across_connections(pg_database_factory):
    engine = make_engine(pg_database_factory())
    lock = AdvisoryKeyLock(engine, timeout_seconds=0.2)
    try:
        with (
            lock.hold("b", "k"),
            pytest.raises(sa.exc.OperationalError, match="lock timeout"),
            lock.hold("b", "k"),
        ):
            pass
        with lock.hold("b", "k"), lock.hold("b", "other"):
            pass  # another key is not held up
    finally:
        engine.dispose()
