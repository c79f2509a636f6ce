"""What the archive promises about its records, proved through the archive's own code on each S3 server
(moto, and Ceph RGW, which ignores conditional PUTs on versioned buckets and checksum headers):

- a second archive attempt of the same key leaves exactly one version;
- a corrupted upload is refused and nothing is kept;
- a locked record cannot be deleted or shortened;
- the archive started against a store that cannot keep a guarantee refuses to start, and says why.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import subprocess
import sys
import uuid
from datetime import timedelta

import pytest
import sqlalchemy as sa
from archive import archiving
from archive.adapters.db import audit_entries, inbox, records
from archive.archiving import handle_directive_registered
from archive.domain.errors import FixityFailed
from archive.domain.records import archive_key
from archive.fixity import check_fixity
from archive.records import read_verified_content, set_legal_hold
from archive_testkit import directive_event, make_vault, stage
from minio.error import S3Error
from shared.messaging import PermanentError
from shared.objectstore import ObjectLocked, Retention

pytestmark = pytest.mark.integration

# How each server's refusal of a corrupted body reaches the archive (docs/operations.md, the write plans):
# RGW checks Content-MD5 and answers BadDigest; moto checks no integrity header, so the adapter reads the
# object back, finds other bytes and removes that version before anything locks it.
CORRUPTION_SEEN_AS = {"rgw": "the store refused the body (BadDigest)", "moto": "stored data hashes to"}


def _rows(engine, table) -> list:
    with engine.connect() as conn:
        return list(conn.execute(sa.select(table)))


def test_a_second_archive_attempt_of_the_same_key_leaves_exactly_one_version(
    monkeypatch, pg_engine, archive_s3, verifier, samples
):
    """A worker stored the file and died before its transaction committed; the broker redelivers the event
    and the archive puts the same key again. The store keeps the first version (RGW: the archive's key lock,
    since RGW would stack a second; moto: the conditional PUT) and the archive adopts it."""
    s3 = archive_s3
    staged = stage(s3.store, samples.valid, "Công văn 1393.pdf", bucket=s3.staging)
    vault = make_vault(s3.store, bucket=s3.archive)
    event = directive_event(f"d-twice-{uuid.uuid4().hex[:6]}", [staged.attachment])
    key = archive_key(event.payload["directive_id"], staged.attachment["sha256"])

    def killed(*args, **kwargs):
        raise RuntimeError("worker killed before its transaction committed")

    monkeypatch.setattr(archiving, "store_records", killed)
    with pytest.raises(RuntimeError, match="killed"):
        handle_directive_registered(event, engine=pg_engine, vault=vault, verifier=verifier)
    first = s3.server.versions(s3.archive, key)
    assert len(first) == 1 and _rows(pg_engine, records) == [] and _rows(pg_engine, inbox) == []

    monkeypatch.undo()
    created = handle_directive_registered(event, engine=pg_engine, vault=vault, verifier=verifier)
    [row] = _rows(pg_engine, records)
    assert created == [row.id]
    assert s3.server.versions(s3.archive, key) == first == [row.version_id]
    assert row.signature_status == "valid" and row.retention_class == "10"
    assert s3.store.stat(s3.archive, key).retention is not None
    content = read_verified_content(row.id, engine=pg_engine, vault=vault, actor="auditor-1")
    assert b"".join(content.chunks()) == samples.valid


def test_a_corrupted_upload_is_refused_and_nothing_is_kept(
    monkeypatch, pg_engine, archive_s3, verifier, samples
):
    s3 = archive_s3
    staged = stage(s3.store, samples.valid, "Kế hoạch 120.pdf", bucket=s3.staging)
    vault = make_vault(s3.store, bucket=s3.archive)
    event = directive_event(f"d-corrupt-{uuid.uuid4().hex[:6]}", [staged.attachment])
    key = archive_key(event.payload["directive_id"], staged.attachment["sha256"])
    original = s3.store._client._put_object

    def corrupting(bucket_name, object_name, body, headers, query_params=None):
        # One byte flipped between the archive and the server: the headers still describe the bytes sent.
        if bucket_name == s3.archive:
            body = bytes([body[0] ^ 1]) + body[1:]
        return original(bucket_name, object_name, body, headers, query_params)

    monkeypatch.setattr(s3.store._client, "_put_object", corrupting)
    # The bytes travel: where the store could copy the staged object itself (moto), the archive is made to
    # upload as it does where it cannot (RGW). A copy's own check is in tests/shared/test_objectstore_s3.py.
    monkeypatch.setattr(s3.store, "server_copy", lambda *args, **kwargs: None)
    with pytest.raises(PermanentError, match=re.escape(CORRUPTION_SEEN_AS[s3.server.name])):
        handle_directive_registered(event, engine=pg_engine, vault=vault, verifier=verifier)
    assert s3.server.versions(s3.archive, key) == []
    assert _rows(pg_engine, records) == [] and _rows(pg_engine, audit_entries) == []

    # The staged file was never harmed: delivered again over a sound line, it is archived once.
    monkeypatch.undo()
    handle_directive_registered(event, engine=pg_engine, vault=vault, verifier=verifier)
    [row] = _rows(pg_engine, records)
    assert s3.server.versions(s3.archive, key) == [row.version_id]
    assert row.sha256 == hashlib.sha256(samples.valid).hexdigest()


@pytest.mark.parametrize("lock_mode", ["GOVERNANCE", "COMPLIANCE"])
def test_a_locked_record_cannot_be_deleted_or_shortened(pg_engine, archive_s3, verifier, samples, lock_mode):
    s3 = archive_s3
    staged = stage(s3.store, samples.valid, "Quyết định 12.pdf", bucket=s3.staging)
    vault = make_vault(s3.store, bucket=s3.archive, lock_mode=lock_mode)
    handle_directive_registered(
        directive_event(f"d-locked-{uuid.uuid4().hex[:6]}", [staged.attachment]),
        engine=pg_engine,
        vault=vault,
        verifier=verifier,
    )
    [row] = _rows(pg_engine, records)
    retention = s3.store.stat(s3.archive, row.key).retention
    assert row.lock_mode == lock_mode and retention is not None and retention.mode == lock_mode
    assert abs(retention.retain_until - row.retain_until) < timedelta(seconds=1)
    shorter = Retention(lock_mode, retention.retain_until - timedelta(days=1))

    with pytest.raises(ObjectLocked):
        s3.store.delete(s3.archive, row.key)
    with pytest.raises(ObjectLocked):
        s3.store.set_retention(s3.archive, row.key, shorter)
    if lock_mode == "COMPLIANCE":  # not even with the right to bypass governance
        with pytest.raises(ObjectLocked):
            s3.store.set_retention(s3.archive, row.key, shorter, bypass_governance=True)
    with pytest.raises(S3Error):  # nor through the raw API, naming the archived version
        s3.raw.remove_object(s3.archive, row.key, version_id=row.version_id)
    # An auditor's legal hold (through the archive) holds it too.
    set_legal_hold(row.id, on=True, reason="Thanh tra 2026", actor="admin-1", engine=pg_engine, vault=vault)
    assert s3.store.stat(s3.archive, row.key).legal_hold
    with pytest.raises(ObjectLocked):
        s3.store.delete(s3.archive, row.key)
    assert s3.store.stat(s3.archive, row.key).retention == retention

    # S3 keeps versions: a raw "overwrite" adds one; the archived version stays byte-exact and fixity
    # reports the newer one instead of serving it.
    s3.raw.put_object(s3.archive, row.key, io.BytesIO(b"forged"), 6)
    original = s3.raw.get_object(s3.archive, row.key, version_id=row.version_id)
    try:
        assert original.read() == samples.valid
    finally:
        original.close()
        original.release_conn()
    assert not check_fixity(row.id, engine=pg_engine, vault=vault, actor="auditor-1").ok
    with pytest.raises(FixityFailed):
        read_verified_content(row.id, engine=pg_engine, vault=vault, actor="auditor-1")


def test_the_worker_refuses_an_rgw_store_it_cannot_serialise_writes_on(rgw, tmp_path, trust_bundle):
    """RGW without a key lock (the archive has one only on PostgreSQL) would stack a second version on a
    locked record: the worker refuses to start, in one line naming the missing capability."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCROUTE_")}
    env.update(
        {
            "DOCROUTE_DATA_DIR": str(tmp_path / "var"),
            "DOCROUTE_JWT_SECRET": "archive-test-secret-0123456789abcdef",
            # SQLite: no advisory locks, so no key lock to stand in for RGW's missing conditional PUT.
            "DOCROUTE_ARCHIVE_DATABASE_URL": f"sqlite:///{tmp_path / 'archive.db'}",
            "DOCROUTE_TRUST_STORE": str(trust_bundle),
            # Never reached: the store is checked before anything is consumed.
            "DOCROUTE_AMQP_URL": "amqp://guest:guest@127.0.0.1:9/",
            "DOCROUTE_S3_ENDPOINT": rgw.endpoint,
            "DOCROUTE_S3_ACCESS_KEY": rgw.access_key,
            "DOCROUTE_S3_SECRET_KEY": rgw.secret_key,
            "DOCROUTE_S3_SECURE": "false",
            "DOCROUTE_S3_REGION": rgw.region,
            "DOCROUTE_ARCHIVE_BUCKET": f"docroute-archive-{uuid.uuid4().hex[:8]}",
        }
    )
    done = subprocess.run(
        [sys.executable, "-m", "archive.worker"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last == (
        "archive worker: refusing to start: object store ignores If-None-Match: * on versioned buckets "
        "and no key lock is configured (a locked record could get a second version)"
    )
