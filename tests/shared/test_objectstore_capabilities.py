"""How the S3 adapter answers what its server can do: the plan per capability set, the refusals, and the
requests a put then makes (moto as the HTTP end, told which capabilities to assume)."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from shared.objectstore import (
    FULL_CAPABILITIES,
    FilesystemStore,
    ObjectLocked,
    Retention,
    S3Store,
    StoreLacksCapability,
    WritePlan,
    plan_writes,
)
from shared.objectstore.s3 import parse_timestamp


def caps(**changes: bool):
    return dataclasses.replace(FULL_CAPABILITIES, **changes)


RGW_LIKE = caps(conditional_put_versioned=False, checksum_sha256=False, copy_source_conditions=False)
MOTO_LIKE = caps(checksum_sha256=False, content_md5=False, copy_source_conditions=False)


@pytest.mark.parametrize(
    ("capabilities", "has_key_lock", "expected"),
    [
        (FULL_CAPABILITIES, False, WritePlan("checksum-sha256", "conditional-put", "on-put")),
        (RGW_LIKE, True, WritePlan("content-md5", "key-lock", "on-put")),
        (MOTO_LIKE, False, WritePlan("read-back", "conditional-put", "after-verify")),
        (
            caps(checksum_sha256=False, content_md5=False, conditional_put_versioned=False),
            True,
            WritePlan("read-back", "key-lock", "after-verify"),
        ),
    ],
    ids=["s3-minio", "rgw-16", "moto", "nothing-checked"],
)
def test_the_plan_takes_the_safest_means_the_server_offers(capabilities, has_key_lock, expected):
    assert plan_writes(capabilities, object_lock=True, has_key_lock=has_key_lock) == expected


def test_the_server_s_conditional_put_is_preferred_to_a_key_lock():
    assert plan_writes(FULL_CAPABILITIES, object_lock=True, has_key_lock=True).single_version == (
        "conditional-put"
    )


@pytest.mark.parametrize(
    ("capabilities", "has_key_lock", "message"),
    [
        (RGW_LIKE, False, r"ignores If-None-Match: \* on versioned buckets and no key lock"),
        (caps(retention_enforced=False), True, "does not enforce object-lock retention"),
        (caps(lock_on_put=False), True, "ignores object-lock headers on PutObject"),
    ],
    ids=["no-conditional-put-no-key-lock", "retention-not-enforced", "lock-headers-ignored"],
)
def test_a_guarantee_that_cannot_be_kept_is_refused_in_one_line(capabilities, has_key_lock, message):
    with pytest.raises(StoreLacksCapability, match=message) as refused:
        plan_writes(capabilities, object_lock=True, has_key_lock=has_key_lock)
    assert "\n" not in str(refused.value)


def test_plain_buckets_need_only_integrity():
    lacking = caps(
        conditional_put_versioned=False, retention_enforced=False, lock_on_put=False, checksum_sha256=False
    )
    assert plan_writes(lacking, object_lock=False, has_key_lock=False) == WritePlan(
        "content-md5", "not-needed", "not-needed"
    )


def test_the_filesystem_store_keeps_every_guarantee_itself(tmp_path):
    store = FilesystemStore(tmp_path)
    assert store.capabilities() == FULL_CAPABILITIES
    assert store.write_plan(object_lock=True) == WritePlan("local", "local", "local")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-12-05T00:43:50.123456789Z", datetime(2026, 12, 5, 0, 43, 50, 123456, tzinfo=UTC)),
        ("2026-12-05T00:43:50.000Z", datetime(2026, 12, 5, 0, 43, 50, tzinfo=UTC)),
        ("2026-12-05T00:43:50Z", datetime(2026, 12, 5, 0, 43, 50, tzinfo=UTC)),
        ("2026-12-05T07:43:50.5+07:00", datetime(2026, 12, 5, 0, 43, 50, 500000, tzinfo=UTC)),
    ],
)
def test_timestamps_parse_with_any_number_of_fractional_digits(text, expected):
    assert parse_timestamp(text) == expected


def test_a_malformed_timestamp_is_a_value_error():
    with pytest.raises(ValueError, match="ISO 8601"):
        parse_timestamp("05/12/2026")


# -- what a put sends under each plan (moto answers; the capabilities are the ones given) -------------


class RecordingKeyLock:
    """A key lock for one process, recording what it was asked to hold."""

    def __init__(self) -> None:
        self.held: list[tuple[str, str]] = []

    @contextlib.contextmanager
    def hold(self, bucket: str, key: str):
        self.held.append((bucket, key))
        yield


def _sent(monkeypatch, store: S3Store) -> list[dict]:
    sent: list[dict] = []
    original = store._client._put_object

    def keep(bucket, key, body, headers, query_params=None):
        sent.append(dict(headers))
        return original(bucket, key, body, headers, query_params)

    monkeypatch.setattr(store._client, "_put_object", keep)
    return sent


@pytest.mark.integration
def test_an_rgw_like_plan_sends_content_md5_and_writes_under_the_key_lock(monkeypatch, s3_endpoint):
    lock = RecordingKeyLock()
    store = S3Store(
        s3_endpoint, "testing", "testing", region="us-east-1", capabilities=RGW_LIKE, key_lock=lock
    )
    bucket = f"locked-{uuid.uuid4().hex[:12]}"
    store.ensure_bucket(bucket, object_lock=True)
    sent = _sent(monkeypatch, store)
    data = "Hồ sơ".encode()
    until = datetime.now(UTC) + timedelta(days=1)
    store.put(
        bucket,
        "r",
        data,
        size=len(data),
        content_type="text/plain",
        sha256=hashlib.sha256(data).hexdigest(),
        retention=Retention("GOVERNANCE", until),
    )
    with pytest.raises(ObjectLocked):
        store.put(
            bucket,
            "r",
            data,
            size=len(data),
            content_type="text/plain",
            sha256=hashlib.sha256(data).hexdigest(),
        )
    assert lock.held == [(bucket, "r"), (bucket, "r")]
    assert len(sent) == 1  # the second write was refused under the lock, before any PUT
    assert "If-None-Match" not in sent[0] and "x-amz-checksum-sha256" not in sent[0]
    assert sent[0]["Content-MD5"]
    assert sent[0]["x-amz-object-lock-mode"] == "GOVERNANCE"


@pytest.mark.integration
def test_a_read_back_plan_locks_only_after_the_bytes_are_confirmed(monkeypatch, s3_endpoint):
    store = S3Store(s3_endpoint, "testing", "testing", region="us-east-1", capabilities=MOTO_LIKE)
    bucket = f"locked-{uuid.uuid4().hex[:12]}"
    store.ensure_bucket(bucket, object_lock=True)
    sent = _sent(monkeypatch, store)
    data = "Quyết định".encode()
    until = datetime.now(UTC) + timedelta(days=1)
    stored = store.put(
        bucket,
        "r",
        data,
        size=len(data),
        content_type="text/plain",
        sha256=hashlib.sha256(data).hexdigest(),
        retention=Retention("COMPLIANCE", until),
    )
    # The PUT carried a provisional legal hold only; retention came once the read-back matched.
    assert sent[0]["x-amz-object-lock-legal-hold"] == "ON"
    assert "x-amz-object-lock-mode" not in sent[0]
    assert stored.legal_hold is False
    assert stored.retention is not None and stored.retention.mode == "COMPLIANCE"


@pytest.mark.integration
def test_a_probe_the_server_denies_is_no_answer_and_fails_instead_of_passing_for_a_refusal(
    monkeypatch, s3_endpoint
):
    from minio.error import S3Error
    from shared.objectstore import ObjectStoreError
    from urllib3 import HTTPResponse

    store = S3Store(s3_endpoint, "testing", "testing", region="us-east-1", capability_bucket="probe-denied")
    original = store._client._execute

    def deny_puts(method, bucket, key=None, **kwargs):
        if method == "PUT" and key:
            # Missing rights on the probe bucket: a 403 that says nothing about If-None-Match or checksums.
            raise S3Error(HTTPResponse(status=403), "AccessDenied", "denied", key, "req", "host")
        return original(method, bucket, key, **kwargs)

    monkeypatch.setattr(store._client, "_execute", deny_puts)
    with pytest.raises(ObjectStoreError, match="probe capabilities: AccessDenied"):
        store.capabilities()
