"""S3Store against moto's S3-protocol server: the shared contract, and how a dead endpoint fails."""

from __future__ import annotations

import base64
import hashlib
import io
import socket
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from minio.error import S3Error
from objectstore_contract import ObjectStoreContract, counting_sha256
from shared.db import make_engine
from shared.objectstore import (
    FULL_CAPABILITIES,
    AdvisoryKeyLock,
    ChecksumMismatch,
    ObjectLocked,
    ObjectNotFound,
    Retention,
    S3Store,
    StoredObject,
    StoreUnavailable,
    VerifiedBytes,
)
from urllib3 import HTTPResponse


def put_bytes(
    store: S3Store, bucket: str, key: str, data: bytes, *, content_type: str = "text/plain", **kwargs
):
    """A put of `data` declared with its true size and SHA-256."""
    return store.put(
        bucket,
        key,
        data,
        size=len(data),
        content_type=content_type,
        sha256=hashlib.sha256(data).hexdigest(),
        **kwargs,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.integration
class TestS3Store(ObjectStoreContract):
    @pytest.fixture
    def store(self, s3_endpoint: str) -> S3Store:
        return S3Store(s3_endpoint, "testing", "testing", secure=False, region="us-east-1")


def test_closed_port_raises_store_unavailable_quickly():
    store = S3Store(f"127.0.0.1:{free_port()}", "testing", "testing", secure=False, region="us-east-1")
    started = time.monotonic()
    with pytest.raises(StoreUnavailable):
        store.stat("docroute-staging", f"{uuid.uuid4().hex}.pdf")
    with pytest.raises(StoreUnavailable):
        store.ping()
    with pytest.raises(StoreUnavailable):
        store.put(
            "docroute-staging",
            "k",
            b"x",
            size=1,
            content_type="text/plain",
            sha256="2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881",
        )
    assert time.monotonic() - started < 3.0


def _s3_error(code: str) -> S3Error:
    return S3Error(HTTPResponse(status=403), code, code, "/docroute-staging", "req", "host")


@pytest.mark.parametrize("code", ["AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"])
def test_ping_treats_rejected_credentials_as_unavailable(monkeypatch, code):
    store = S3Store("127.0.0.1:9", "ak", "sk")

    def refuse(bucket: str) -> bool:
        assert bucket == "docroute-staging"
        raise _s3_error(code)

    monkeypatch.setattr(store._client, "bucket_exists", refuse)
    with pytest.raises(StoreUnavailable, match=code):
        store.ping()


def test_error_codes_translate_to_port_errors(monkeypatch):
    store = S3Store("127.0.0.1:9", "ak", "sk")

    def missing(*args, **kwargs):
        raise _s3_error("NoSuchKey")

    monkeypatch.setattr(store._client, "stat_object", missing)
    with pytest.raises(ObjectNotFound):
        store.stat("docroute-staging", "k")


# -- how many requests an upload and a read cost, and what stands in for the read-back ----------------


@pytest.fixture
def s3_store(s3_endpoint: str) -> S3Store:
    """A store told that its server checks checksums and conditions as S3 and MinIO do (their answers to
    the capability probe): these tests count the requests of that plan. moto echoes the SHA-256 header
    without checking it, so a store left to probe moto reads back instead (the tests below say so)."""
    return S3Store(
        s3_endpoint, "testing", "testing", secure=False, region="us-east-1", capabilities=FULL_CAPABILITIES
    )


@pytest.fixture
def probing_store(s3_endpoint: str) -> S3Store:
    """A store that learns what moto does, as a deployed one would."""
    return S3Store(s3_endpoint, "testing", "testing", secure=False, region="us-east-1")


@pytest.fixture
def s3_bucket(s3_store: S3Store) -> str:
    name = f"plain-{uuid.uuid4().hex[:12]}"
    s3_store.ensure_bucket(name)
    return name


def _spy(monkeypatch, obj, name: str) -> list[tuple]:
    calls: list[tuple] = []
    original = getattr(obj, name)

    def spy(*args, **kwargs):
        calls.append(args)
        return original(*args, **kwargs)

    monkeypatch.setattr(obj, name, spy)
    return calls


@pytest.mark.integration
def test_put_confirmed_by_the_servers_checksum_is_not_read_back(monkeypatch, s3_store, s3_bucket):
    data = "Công văn số 1393/CVT-CL".encode()
    gets = _spy(monkeypatch, s3_store._client, "get_object")

    stored = put_bytes(
        s3_store,
        s3_bucket,
        "a.txt",
        data,
    )

    assert gets == []  # the server echoed x-amz-checksum-sha256: it checked the body against it
    assert stored.sha256 == hashlib.sha256(data).hexdigest()
    assert s3_store.read(s3_bucket, "a.txt") == data


@pytest.mark.integration
@pytest.mark.parametrize("verified", [False, True], ids=["bytes", "verified-bytes"])
def test_put_reads_back_and_refuses_when_the_server_does_not_confirm_the_checksum(
    monkeypatch, probing_store, s3_bucket, verified
):
    s3_store = probing_store  # moto checks neither checksum header: the plan is to read back
    data = "Quyết định".encode()
    original = s3_store._client._put_object

    def lossy_server(bucket, key, body, headers, query_params=None):
        # A server that ignores the checksum header: it stores other bytes and answers without the echo.
        result = original(bucket, key, b"X" * len(body), headers, query_params)
        result.http_headers.pop("x-amz-checksum-sha256", None)
        return result

    monkeypatch.setattr(s3_store._client, "_put_object", lossy_server)
    with pytest.raises(ChecksumMismatch, match="stored data hashes to"):
        s3_store.put(
            s3_bucket,
            "b.txt",
            VerifiedBytes(data) if verified else data,
            size=len(data),
            content_type="text/plain",
            sha256=hashlib.sha256(data).hexdigest(),
        )
    assert not s3_store.exists(s3_bucket, "b.txt")


@pytest.mark.integration
def test_open_checks_the_recorded_checksum_from_the_get_alone(monkeypatch, s3_store, s3_bucket):
    data = "Báo cáo".encode()
    put_bytes(
        s3_store,
        s3_bucket,
        "c.txt",
        data,
    )
    # The same key rewritten behind the store's back, its recorded SHA-256 left as it was.
    s3_store._client.put_object(
        s3_bucket,
        "c.txt",
        io.BytesIO(b"changed"),
        7,
        metadata={"x-amz-meta-docroute-sha256": hashlib.sha256(data).hexdigest()},
    )
    heads = _spy(monkeypatch, s3_store._client, "stat_object")

    with pytest.raises(ChecksumMismatch), s3_store.open(s3_bucket, "c.txt") as chunks:
        b"".join(chunks)
    assert heads == []

    with pytest.raises(ChecksumMismatch), s3_store.open_with_info(s3_bucket, "c.txt") as (info, chunks):
        assert info.sha256 == hashlib.sha256(data).hexdigest() and info.size == 7
        b"".join(chunks)
    with pytest.raises(ChecksumMismatch), s3_store.open(s3_bucket, "c.txt") as chunks:
        chunks.read_all()  # changed bytes never become VerifiedBytes
    assert heads == []


@pytest.mark.integration
def test_a_put_of_verified_bytes_makes_no_sha256_pass_and_still_sends_the_checksum(
    monkeypatch, s3_store, s3_bucket
):
    from shared.objectstore import s3

    data = "Kế hoạch số 12/KH-UBND".encode() * 50_000
    digest = hashlib.sha256(data).digest()
    s3_store.put(
        s3_bucket, "staged", data, size=len(data), content_type="application/pdf", sha256=digest.hex()
    )
    with s3_store.open(s3_bucket, "staged") as chunks:
        verified = chunks.read_all()
    made = counting_sha256(monkeypatch, s3)
    sent: list[dict] = []
    gets = _spy(monkeypatch, s3_store._client, "get_object")
    original = s3_store._client._put_object

    def keep_headers(bucket, key, body, headers, query_params=None):
        sent.append(dict(headers))
        return original(bucket, key, body, headers, query_params)

    monkeypatch.setattr(s3_store._client, "_put_object", keep_headers)
    stored = s3_store.put(
        s3_bucket, "archived", verified, size=len(data), content_type="application/pdf", sha256=digest.hex()
    )

    assert made == []  # the digest the read computed stands in for a second pass
    # The server still gets the checksum to verify the body against, and its echo spares the read-back.
    assert sent[0]["x-amz-checksum-sha256"] == base64.b64encode(digest).decode("ascii")
    assert gets == []
    assert stored.sha256 == digest.hex()
    monkeypatch.undo()
    assert s3_store.read(s3_bucket, "archived") == data


def _requests(monkeypatch, store: S3Store) -> list[tuple[str, str | None, str]]:
    """Every HTTP request the store's minio client makes: (method, key, outcome: status or S3 error code)."""
    seen: list[tuple[str, str | None, str]] = []
    original = store._client._url_open

    def recording(method, region, *args, **kwargs):
        key = kwargs.get("object_name")
        try:
            response = original(method, region, *args, **kwargs)
        except S3Error as exc:
            seen.append((method, key, str(exc.code)))
            raise
        seen.append((method, key, str(response.status)))
        return response

    monkeypatch.setattr(store._client, "_url_open", recording)
    return seen


@pytest.mark.integration
def test_a_put_of_a_new_key_is_one_conditional_put_and_nothing_else(monkeypatch, s3_store, s3_bucket):
    data = "Kế hoạch".encode()
    sent: list[dict] = []
    original = s3_store._client._put_object

    def keep_headers(bucket, key, body, headers, query_params=None):
        sent.append(dict(headers))
        return original(bucket, key, body, headers, query_params)

    monkeypatch.setattr(s3_store._client, "_put_object", keep_headers)
    requests = _requests(monkeypatch, s3_store)

    stored = put_bytes(
        s3_store,
        s3_bucket,
        "d.txt",
        data,
    )

    # No lock-check HEAD before and no HEAD after: the server decides "absent" and confirms the checksum.
    assert requests == [("PUT", "d.txt", "200")]
    assert sent[0]["If-None-Match"] == "*"
    monkeypatch.undo()
    assert stored == s3_store.stat(s3_bucket, "d.txt")


@pytest.mark.integration
@pytest.mark.parametrize("lock", ["retention", "legal_hold"])
def test_a_put_over_a_locked_object_is_refused_after_one_head_and_leaves_one_version(
    monkeypatch, s3_store, lock
):
    bucket = f"locked-{uuid.uuid4().hex[:12]}"
    s3_store.ensure_bucket(bucket, object_lock=True)
    first = "Hồ sơ gốc".encode()
    put_bytes(
        s3_store,
        bucket,
        "records/y",
        first,
        retention=Retention("GOVERNANCE", datetime.now(UTC) + timedelta(days=1))
        if lock == "retention"
        else None,
        legal_hold=lock == "legal_hold",
    )
    other = "Bản thay thế".encode()
    requests = _requests(monkeypatch, s3_store)

    with pytest.raises(ObjectLocked, match="legal hold" if lock == "legal_hold" else "GOVERNANCE retention"):
        put_bytes(
            s3_store,
            bucket,
            "records/y",
            other,
        )

    # The conditional PUT finds the key taken (412); only then is the holder looked at, and it is locked.
    assert requests == [("PUT", "records/y", "PreconditionFailed"), ("HEAD", "records/y", "200")]
    monkeypatch.undo()
    versions = list(s3_store._client.list_objects(bucket, prefix="records/y", include_version=True))
    assert len(versions) == 1
    assert s3_store.read(bucket, "records/y") == first


@pytest.mark.integration
def test_a_put_over_an_unlocked_object_replaces_it_after_the_conditional_put_fails(
    monkeypatch, s3_store, s3_bucket
):
    old, new = b"first", b"second"
    put_bytes(
        s3_store,
        s3_bucket,
        "e.txt",
        old,
    )
    requests = _requests(monkeypatch, s3_store)

    put_bytes(
        s3_store,
        s3_bucket,
        "e.txt",
        new,
    )

    assert requests == [
        ("PUT", "e.txt", "PreconditionFailed"),
        ("HEAD", "e.txt", "200"),
        ("PUT", "e.txt", "200"),
    ]
    monkeypatch.undo()
    assert s3_store.read(s3_bucket, "e.txt") == new


@pytest.mark.integration
def test_a_conflict_with_an_upload_still_in_flight_retries_the_conditional_put(
    monkeypatch, s3_store, s3_bucket
):
    data = "Tờ trình".encode()
    original = s3_store._client._put_object
    headers_sent: list[dict] = []

    def busy_once(bucket, key, body, headers, query_params=None):
        headers_sent.append(dict(headers))
        if len(headers_sent) == 1:
            # S3's answer while another conditional upload of the key has not completed.
            raise S3Error(HTTPResponse(status=409), "ConditionalRequestConflict", "busy", key, "req", "host")
        return original(bucket, key, body, headers, query_params)

    monkeypatch.setattr(s3_store._client, "_put_object", busy_once)
    put_bytes(
        s3_store,
        s3_bucket,
        "f.txt",
        data,
    )

    # The other upload never landed (HEAD: not found), so the retry is conditional again, never blind.
    assert [h.get("If-None-Match") for h in headers_sent] == ["*", "*"]
    assert s3_store.read(s3_bucket, "f.txt") == data


@pytest.mark.integration
def test_a_writer_that_gets_there_first_is_not_overwritten(monkeypatch, s3_store, s3_endpoint):
    bucket = f"locked-{uuid.uuid4().hex[:12]}"
    s3_store.ensure_bucket(bucket, object_lock=True)
    data = "Hồ sơ lưu trữ".encode()
    sha = hashlib.sha256(data).hexdigest()
    until = datetime.now(UTC) + timedelta(days=1)
    other = S3Store(s3_endpoint, "testing", "testing", secure=False, region="us-east-1")
    original = s3_store._client._put_object
    raced: list[str] = []

    def slow_put(bucket_name, key, body, headers, query_params=None):
        # Another worker archives the same object just before this store's PUT reaches the server.
        if not raced:
            raced.append(key)
            other.put(
                bucket_name,
                key,
                data,
                size=len(data),
                content_type="text/plain",
                sha256=sha,
                retention=Retention("GOVERNANCE", until),
            )
        return original(bucket_name, key, body, headers, query_params)

    monkeypatch.setattr(s3_store._client, "_put_object", slow_put)
    with pytest.raises(ObjectLocked):
        s3_store.put(
            bucket,
            "records/x",
            data,
            size=len(data),
            content_type="text/plain",
            sha256=sha,
            retention=Retention("GOVERNANCE", until),
        )
    versions = list(other._client.list_objects(bucket, prefix="records/x", include_version=True))
    assert len(versions) == 1  # one version, the first writer's: no second copy stacked on it


# -- server-side copy: the store copies, answers its SHA-256 of the copy, and the guarantees hold --------


@pytest.fixture
def key_lock(pg_url: str) -> Iterator[AdvisoryKeyLock]:
    engine = make_engine(pg_url)
    yield AdvisoryKeyLock(engine)
    engine.dispose()


@pytest.fixture
def copying_store(s3_endpoint: str, key_lock: AdvisoryKeyLock) -> S3Store:
    """A store that probes moto, with the key lock the archive gives it on PostgreSQL."""
    return S3Store(s3_endpoint, "testing", "testing", secure=False, region="us-east-1", key_lock=key_lock)


def _staged(store: S3Store, data: bytes) -> tuple[str, StoredObject]:
    staging = f"staging-{uuid.uuid4().hex[:12]}"
    store.ensure_bucket(staging)
    info = put_bytes(store, staging, "directives/d/file.pdf", data, content_type="application/pdf")
    return staging, info


@pytest.mark.integration
def test_the_probe_learns_that_moto_copies_with_a_checksum_and_a_hold_but_no_condition(probing_store):
    caps = probing_store.capabilities()
    assert (caps.copy_checksum_sha256, caps.copy_lock, caps.copy_conditional) == (True, True, False)


@pytest.mark.integration
def test_a_server_copy_into_a_locked_bucket_sends_no_bytes_and_locks_only_the_checked_copy(
    monkeypatch, copying_store
):
    data = "Kế hoạch tháng hành động vì an toàn thực phẩm".encode() * 1000
    digest = hashlib.sha256(data).hexdigest()
    _, source = _staged(copying_store, data)
    archive = f"archive-{uuid.uuid4().hex[:12]}"
    copying_store.ensure_bucket(archive, object_lock=True)
    until = datetime.now(UTC) + timedelta(days=1)
    requests = _requests(monkeypatch, copying_store)

    stored = copying_store.server_copy(
        source, archive, "records/a.pdf", sha256=digest, retention=Retention("GOVERNANCE", until)
    )

    # HEAD under the key lock (moto ignores If-None-Match on copies), the copy under a legal hold, then the
    # retention and the hold's release once the store's SHA-256 of the copy matched: no GET, no body PUT.
    assert [(m, k) for m, k, _ in requests] == [
        ("HEAD", "records/a.pdf"),
        ("PUT", "records/a.pdf"),
        ("PUT", "records/a.pdf"),
        ("PUT", "records/a.pdf"),
    ]
    assert requests[0][2] == "NoSuchKey"
    monkeypatch.undo()
    assert stored is not None
    held = copying_store.stat(archive, "records/a.pdf")
    assert held.sha256 == digest and held.size == len(data) and held.content_type == "application/pdf"
    assert held.retention is not None and held.retention.mode == "GOVERNANCE"
    assert not held.legal_hold
    assert copying_store.read(archive, "records/a.pdf") == data


@pytest.mark.integration
def test_a_server_copy_whose_checksum_differs_is_refused_and_leaves_nothing(copying_store):
    data = "Bản gốc".encode()
    staging, source = _staged(copying_store, data)
    # The staged object is replaced after it was read: the store copies other bytes than were checked.
    copying_store._client._execute("PUT", staging, source.key, body=b"other bytes")
    archive = f"archive-{uuid.uuid4().hex[:12]}"
    copying_store.ensure_bucket(archive, object_lock=True)

    with pytest.raises(ChecksumMismatch, match="copy"):
        copying_store.server_copy(
            source,
            archive,
            "records/b.pdf",
            sha256=source.sha256,
            retention=Retention("GOVERNANCE", datetime.now(UTC) + timedelta(days=1)),
        )

    assert list(copying_store._client.list_objects(archive, include_version=True)) == []


@pytest.mark.integration
def test_a_server_copy_over_a_taken_key_leaves_it_to_put_and_makes_no_second_version(copying_store):
    data = "Hồ sơ gốc".encode()
    _, source = _staged(copying_store, data)
    archive = f"archive-{uuid.uuid4().hex[:12]}"
    copying_store.ensure_bucket(archive, object_lock=True)
    retention = Retention("GOVERNANCE", datetime.now(UTC) + timedelta(days=1))
    first = copying_store.server_copy(
        source, archive, "records/c.pdf", sha256=source.sha256, retention=retention
    )
    assert first is not None

    assert copying_store.server_copy(source, archive, "records/c.pdf", sha256=source.sha256) is None
    with pytest.raises(ObjectLocked):
        put_bytes(copying_store, archive, "records/c.pdf", data)
    assert len(list(copying_store._client.list_objects(archive, include_version=True))) == 1


@pytest.mark.integration
def test_without_a_key_lock_moto_cannot_take_a_locked_key_by_copy_and_the_caller_uploads(probing_store):
    _, source = _staged(probing_store, b"%PDF-1.7 staged")
    archive = f"archive-{uuid.uuid4().hex[:12]}"
    probing_store.ensure_bucket(archive, object_lock=True)

    assert probing_store.server_copy(source, archive, "records/d.pdf", sha256=source.sha256) is None
    assert list(probing_store._client.list_objects(archive, include_version=True)) == []
