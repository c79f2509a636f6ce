"""Against the real servers: retention classes on moto S3 and Ceph RGW, WORM and fixity on the filesystem, the
audit chain on PostgreSQL (edited rows, rewritten history vs. checkpoints, concurrent appends) and concurrent
redeliveries on both S3 servers. (What the store guarantees for a record: test_archive_store_guarantees.)"""

from __future__ import annotations

import hashlib
import os
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from archive.adapters import audit_log
from archive.adapters.db import audit_entries, records
from archive.archiving import handle_directive_registered
from archive.audit import verify_audit, write_checkpoint
from archive.domain.audit import AuditEvent
from archive.fixity import check_fixity
from archive_testkit import STAGING, directive_event, make_vault, rechain_with_edit, stage
from shared.objectstore import ObjectLocked

pytestmark = pytest.mark.integration


def _archive_one(engine, store, staging, archive, verifier, data, **meta):
    staged = stage(store, data, "công văn.pdf", bucket=staging)
    vault = make_vault(store, bucket=archive)
    handle_directive_registered(
        directive_event(f"d-{uuid.uuid4().hex[:6]}", [staged.attachment], **meta),
        engine=engine,
        vault=vault,
        verifier=verifier,
    )
    with engine.connect() as conn:
        row = conn.execute(sa.select(records).order_by(records.c.archived_at.desc())).first()
    return vault, row


def test_a_declared_type_alone_never_locks_for_decades_nor_holds_on_s3(
    pg_engine, archive_s3, verifier, samples
):
    """Finding 9 on S3: "Nghị quyết" on an unsigned file gave permanent retention under legal hold."""
    store, staging, archive = archive_s3.store, archive_s3.staging, archive_s3.archive
    _, unsigned = _archive_one(
        pg_engine, store, staging, archive, verifier, samples.unsigned, document_type="Nghị quyết"
    )
    assert unsigned.retention_class == "10"
    assert store.stat(archive, unsigned.key).retention.retain_until.year == unsigned.archived_at.year + 10
    # Through the adapter: RGW answers a legal-hold query on an object that never had one with an error.
    assert not store.stat(archive, unsigned.key).legal_hold
    _, signed = _archive_one(
        pg_engine, store, staging, archive, verifier, samples.valid, document_type="Nghị quyết"
    )
    assert signed.retention_class == "vinh_vien"
    # The lock was extended in place after the signature checked out: the archived version is the same.
    stat = store.stat(archive, signed.key)
    assert stat.retention.retain_until.year == signed.archived_at.year + 70
    assert stat.version_id == signed.version_id
    assert not stat.legal_hold


def test_retained_object_cannot_be_deleted_or_overwritten_on_filesystem(
    engine, vault, verifier, samples, fs_store
):
    staged = stage(fs_store, samples.valid, "a.pdf")
    handle_directive_registered(
        directive_event("d-fs", [staged.attachment]), engine=engine, vault=vault, verifier=verifier
    )
    with engine.connect() as conn:
        row = conn.execute(sa.select(records)).one()
    with pytest.raises(ObjectLocked):
        fs_store.delete(vault.archive_bucket, row.key)
    forged = b"forged"
    with pytest.raises(ObjectLocked):
        fs_store.put(
            vault.archive_bucket,
            row.key,
            forged,
            size=len(forged),
            content_type="application/pdf",
            sha256=hashlib.sha256(forged).hexdigest(),
        )
    assert fs_store.read(vault.archive_bucket, row.key) == samples.valid
    assert fs_store.stat(STAGING, staged.attachment["key"]).sha256 == row.sha256


def test_edited_audit_row_breaks_the_chain_on_postgresql(pg_engine, archive_s3, verifier, samples):
    store, staging, archive = archive_s3.store, archive_s3.staging, archive_s3.archive
    vault, _ = _archive_one(pg_engine, store, staging, archive, verifier, samples.valid)
    assert verify_audit(engine=pg_engine, vault=vault).ok
    with pg_engine.begin() as conn:
        conn.execute(
            sa.update(audit_entries).where(audit_entries.c.seq == 1).values(details='{"number":"1/QĐ"}')
        )
    result = verify_audit(engine=pg_engine, vault=vault)
    assert not result.ok and result.chain.broken_seq == 1


def test_rewritten_history_is_caught_by_the_checkpoint(pg_engine, archive_s3, verifier, samples):
    store, staging, archive = archive_s3.store, archive_s3.staging, archive_s3.archive
    vault, _ = _archive_one(pg_engine, store, staging, archive, verifier, samples.valid)
    written = write_checkpoint(engine=pg_engine, vault=vault)
    assert written.ok and written.checkpoint_key.startswith("checkpoints/")
    assert store.stat(archive, written.checkpoint_key).retention is not None

    # A thorough intruder edits entry 1 and recomputes every hash after it: the chain alone looks fine.
    entries = list(audit_log.iter_entries(pg_engine))
    with pg_engine.begin() as conn:
        rechain_with_edit(conn, entries, seq=1)

    result = verify_audit(engine=pg_engine, vault=vault)
    assert result.chain.ok
    assert not result.ok and "rewritten" in result.checkpoint_problem


def _in_four_threads(write: Callable[[str], None]) -> list[BaseException]:
    """Runs write("w0") … write("w3") at once; what they raised."""
    errors: list[BaseException] = []

    def guarded(name: str) -> None:
        try:
            write(name)
        except Exception as exc:  # noqa: BLE001 - any failure is reported by the caller's assertion
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(f"w{n}",)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def test_concurrent_appends_never_fork_the_chain(pg_engine):
    def writer(name: str) -> None:
        for i in range(15):
            with pg_engine.begin() as conn:
                audit_log.append(
                    conn,
                    AuditEvent(action="read", actor=name, occurred_at=datetime.now(UTC), details={"i": i}),
                )

    assert _in_four_threads(writer) == []
    result = audit_log.verify(pg_engine)
    assert result.ok and result.count == 60


def test_concurrent_batched_appends_never_fork_the_chain(pg_engine):
    def writer(name: str) -> None:
        for i in range(10):
            with pg_engine.begin() as conn:
                audit_log.append_many(
                    conn,
                    [
                        AuditEvent(action=action, actor=name, occurred_at=datetime.now(UTC), details={"i": i})
                        for action in ("a", "b")
                    ],
                )

    assert _in_four_threads(writer) == []
    result = audit_log.verify(pg_engine)
    assert result.ok and result.count == 80
    with pg_engine.connect() as conn:
        rows = conn.execute(
            sa.select(audit_entries.c.action, audit_entries.c.actor).order_by(audit_entries.c.seq)
        )
        pairs = [(r.action, r.actor) for r in rows]
    # Each transaction's entries stay together and in order.
    assert all(pairs[i][0] == "a" and pairs[i + 1] == ("b", pairs[i][1]) for i in range(0, 80, 2))


def test_concurrent_archiving_with_redeliveries_keeps_one_record_each_and_an_intact_chain(
    pg_engine, archive_s3, verifier, samples
):
    """Several consumers at once (as with DOCROUTE_ARCHIVE_CONSUMERS), every event delivered twice."""
    store, staging, archive = archive_s3.store, archive_s3.staging, archive_s3.archive
    vault = make_vault(store, bucket=archive)
    events = []
    for n in range(6):
        data = samples.valid if n % 2 == 0 else samples.unsigned
        staged = stage(store, data, f"tệp {n}.pdf", bucket=staging)
        events.append(directive_event(f"d-conc-{n}-{uuid.uuid4().hex[:6]}", [staged.attachment]))
    deliveries = [e for e in events for _ in range(2)]
    errors: list[BaseException] = []
    created: list[str] = []
    lock = threading.Lock()
    cursor = iter(deliveries)

    def consumer() -> None:
        while True:
            with lock:
                envelope = next(cursor, None)
            if envelope is None:
                return
            try:
                ids = handle_directive_registered(envelope, engine=pg_engine, vault=vault, verifier=verifier)
            except Exception as exc:  # noqa: BLE001 - reported by the assertion below
                errors.append(exc)
                continue
            with lock:
                created.extend(ids)

    threads = [threading.Thread(target=consumer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert errors == []
    with pg_engine.connect() as conn:
        rows = conn.execute(sa.select(records.c.id, records.c.source_event_id)).all()
        actions = [r.action for r in conn.execute(sa.select(audit_entries.c.action))]
    assert sorted(created) == sorted(r.id for r in rows)
    assert sorted(r.source_event_id for r in rows) == sorted(e.id for e in events)
    assert actions.count("directive_registered") == 6 and actions.count("record_archived") == 6
    chain = audit_log.verify(pg_engine)
    assert chain.ok and chain.count == 12
    with pg_engine.connect() as conn:
        archived = conn.execute(sa.select(records.c.key, records.c.version_id)).all()
    for row in archived:
        # One version per object, the recorded one: duplicates never stacked a second copy (fixity would
        # then report "another object version than the one archived").
        assert archive_s3.server.versions(archive, row.key) == [row.version_id]


@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
def test_a_second_registration_of_a_directive_keeps_the_first(backend, pg_engine, engine):
    from archive.adapters import repository
    from archive.adapters.db import directives

    eng = pg_engine if backend == "postgresql" else engine
    values = {
        "directive_id": "d-twice",
        "source_event_id": "e-1",
        "arrival_number": 7,
        "arrival_date": "2026-01-05",
        "received_at": "2026-01-05T08:00:00+07:00",
        "metadata": {"number": "7/UBND"},
        "registered_at": datetime.now(UTC),
    }
    with eng.begin() as conn:
        first = repository.upsert_directive(conn, values)
        again = repository.upsert_directive(conn, {**values, "source_event_id": "e-2", "arrival_number": 8})
    with eng.connect() as conn:
        row = conn.execute(sa.select(directives)).one()
    assert (first, again) == (True, False)
    assert (row.source_event_id, row.arrival_number) == ("e-1", 7)


def test_fixity_catches_a_file_rewritten_behind_the_service(engine, vault, verifier, samples, fs_store):
    staged = stage(fs_store, samples.valid, "a.pdf")
    handle_directive_registered(
        directive_event("d-fs2", [staged.attachment]), engine=engine, vault=vault, verifier=verifier
    )
    with engine.connect() as conn:
        row = conn.execute(sa.select(records)).one()
    path = fs_store._paths(vault.archive_bucket, row.key)[0]
    os.chmod(path, 0o644)
    path.write_bytes(samples.tampered)
    outcome = check_fixity(row.id, engine=engine, vault=vault, actor="auditor")
    assert not outcome.ok and outcome.actual_sha256 == hashlib.sha256(samples.tampered).hexdigest()
