"""Audit checkpoints against PostgreSQL and each S3 server (moto, Ceph RGW): the locked bucket, not the
database, is the reference."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from archive import audit
from archive.adapters import audit_log, repository
from archive.adapters.db import audit_checkpoints, audit_entries, outbox, records
from archive.archiving import handle_directive_registered
from archive.audit import LockedCheckpoint, verify_audit, write_checkpoint
from archive.deps import ArchiveDeps
from archive.domain.audit import CHECKPOINT_PREFIX, AuditEvent, Checkpoint
from archive.fixity import check_fixity
from archive.worker import build_worker
from archive_testkit import (
    directive_event,
    make_vault,
    rechain_with_edit,
    stage,
    write_checkpoint_killed_before_its_row,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def s3_vault(archive_s3):
    return make_vault(archive_s3.store, bucket=archive_s3.archive), archive_s3.staging


def _archive(engine, vault, staging, verifier, data: bytes, directive_id: str) -> None:
    staged = stage(vault.store, data, "Công văn.pdf", bucket=staging)
    handle_directive_registered(
        directive_event(directive_id, [staged.attachment]), engine=engine, vault=vault, verifier=verifier
    )


def audit_log_event(action: str) -> AuditEvent:
    return AuditEvent(action=action, actor="service:archive", occurred_at=datetime.now(UTC))


def _locked_checkpoints(vault) -> list[str]:
    return [o.key for o in vault.store.list_objects(vault.archive_bucket, CHECKPOINT_PREFIX)]


def _broken_announcements(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(
            sa.select(sa.func.count())
            .select_from(outbox)
            .where(outbox.c.routing_key == "archive.audit_chain_broken.v1")
        ).scalar_one()


def test_deleting_checkpoint_rows_with_a_rechained_edit_is_reported_as_tampering(
    pg_engine, s3_vault, verifier, samples
):
    """Finding 1: verification trusted the checkpoint rows; the rows go, the locked objects stay."""
    vault, staging = s3_vault
    _archive(pg_engine, vault, staging, verifier, samples.valid, "d-f1")
    assert write_checkpoint(engine=pg_engine, vault=vault).ok
    _archive(pg_engine, vault, staging, verifier, samples.unsigned, "d-f1b")
    assert write_checkpoint(engine=pg_engine, vault=vault).ok
    assert len(_locked_checkpoints(vault)) == 2
    assert verify_audit(engine=pg_engine, vault=vault).ok

    entries = list(audit_log.iter_entries(pg_engine))
    with pg_engine.begin() as conn:  # one transaction: history rewritten, the index of checkpoints emptied
        rechain_with_edit(conn, entries, seq=1)
        conn.execute(sa.delete(audit_checkpoints))

    result = verify_audit(engine=pg_engine, vault=vault)
    assert result.chain.ok  # the chain on its own is consistent again
    assert not result.ok
    assert result.checkpoints_checked == 2
    assert sum("checkpoint rows were deleted" in p for p in result.problems) == 2
    assert sum("the database was rewritten" in p for p in result.problems) == 2

    # The worker must not make the forged chain the reference, and says so once.
    keys_before = _locked_checkpoints(vault)
    with pg_engine.begin() as conn:
        audit_log.append(conn, audit_log_event("after the forgery"))
    refused = write_checkpoint(engine=pg_engine, vault=vault)
    assert not refused.ok and _locked_checkpoints(vault) == keys_before
    assert _broken_announcements(pg_engine) == 1
    again = write_checkpoint(engine=pg_engine, vault=vault, announced=refused.reason)
    assert not again.ok and _broken_announcements(pg_engine) == 1


def test_a_forged_checkpoint_row_or_an_edited_one_is_tampering(pg_engine, s3_vault, verifier, samples):
    vault, staging = s3_vault
    _archive(pg_engine, vault, staging, verifier, samples.valid, "d-rows")
    written = write_checkpoint(engine=pg_engine, vault=vault)
    with pg_engine.begin() as conn:
        conn.execute(
            sa.update(audit_checkpoints)
            .where(audit_checkpoints.c.key == written.checkpoint_key)
            .values(head_hash="e" * 64)
        )
        conn.execute(
            sa.insert(audit_checkpoints).values(
                key="checkpoints/forged.json",
                count=1,
                head_hash="f" * 64,
                created_at=written.checkpoint.created_at,
            )
        )
    result = verify_audit(engine=pg_engine, vault=vault)
    assert not result.ok
    assert any("the row was edited" in p for p in result.problems)
    assert any("checkpoints/forged.json has no locked object" in p for p in result.problems)


def test_entries_cut_after_the_last_checkpoint_are_missed_no_longer(pg_engine, s3_vault, verifier, samples):
    """Finding 2: the head is checkpointed per round of a few seconds; cutting it off is then visible."""
    vault, staging = s3_vault
    _archive(pg_engine, vault, staging, verifier, samples.valid, "d-cut")
    written = write_checkpoint(engine=pg_engine, vault=vault)
    assert written.checkpoint.count == audit_log.head(pg_engine)[0] == 2
    with pg_engine.begin() as conn:
        conn.execute(sa.delete(audit_entries).where(audit_entries.c.seq == 2))
    result = verify_audit(engine=pg_engine, vault=vault)
    assert result.chain.ok and not result.ok
    assert "the chain has 1 entries but the checkpoint" in result.problems[0]
    # The worker, knowing the last checkpoint, refuses to go on from the cut chain.
    refused = write_checkpoint(
        engine=pg_engine,
        vault=vault,
        reference=LockedCheckpoint(written.checkpoint_key, written.checkpoint),
    )
    assert not refused.ok


def test_fixity_compares_with_the_digest_the_audit_chain_recorded(pg_engine, s3_vault, verifier, samples):
    """Finding 2: new bytes, the store's recorded digest and records.sha256 changed together still fail."""
    vault, staging = s3_vault
    _archive(pg_engine, vault, staging, verifier, samples.valid, "d-fix")
    with pg_engine.connect() as conn:
        row = conn.execute(sa.select(records)).one()
    forged = samples.tampered
    forged_sha = hashlib.sha256(forged).hexdigest()
    # The intruder stores other bytes under a new key (the locked object cannot be replaced) and points the
    # record at them, with their digest: bytes, the store's own checksum and the column all agree.
    vault.store.put(
        vault.archive_bucket,
        f"records/d-fix/{forged_sha}",
        forged,
        size=len(forged),
        content_type="application/pdf",
        sha256=forged_sha,
    )
    with pg_engine.begin() as conn:
        conn.execute(
            sa.update(records)
            .where(records.c.id == row.id)
            .values(sha256=forged_sha, key=f"records/d-fix/{forged_sha}", version_id=None, size=len(forged))
        )
    outcome = check_fixity(row.id, engine=pg_engine, vault=vault, actor="auditor-1")
    assert not outcome.ok
    assert row.sha256 in outcome.detail and "audit chain" in outcome.detail


def _row_keys(engine) -> list[str]:
    with engine.connect() as conn:
        return [row.key for row in repository.checkpoint_rows(conn)]


class _ListingHook:
    """The store, with a hook run before each listing (where a verifier reads the checkpoint objects)."""

    def __init__(self, store: Any, before: Callable[[], None]) -> None:
        self._store = store
        self._before = before

    def list_objects(self, bucket: str, prefix: str) -> Any:
        self._before()
        return self._store.list_objects(bucket, prefix)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


@pytest.mark.parametrize(
    ("object_at", "row_at"), [(0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2)], ids=lambda n: f"read{n}"
)
def test_a_checkpoint_in_flight_is_never_reported_as_tampering(
    pg_engine, s3_vault, verifier, samples, monkeypatch, object_at, row_at
):
    """Defect 1: whichever way the worker's two writes (object, then row) fall among the verifier's two
    index reads (the checkpoint rows and the bucket listing, in whatever order it makes them), the
    verification is ok. Position n means: just before the verifier's (n+1)-th read; 2 is after both."""
    vault, staging = s3_vault
    _archive(pg_engine, vault, staging, verifier, samples.valid, "d-race")
    assert write_checkpoint(engine=pg_engine, vault=vault).ok
    with pg_engine.begin() as conn:
        audit_log.append(conn, audit_log_event("appended while a verification runs"))

    pending: dict[str, Any] = {}
    reads = 0

    def store_the_object() -> None:
        pending.update(write_checkpoint_killed_before_its_row(pg_engine, vault, monkeypatch))

    def commit_the_row() -> None:
        with pg_engine.begin() as conn:
            repository.add_checkpoint(conn, **pending)

    steps = [(object_at, store_the_object), (row_at, commit_the_row)]

    def writer_steps_due() -> None:
        nonlocal reads
        for at, step in steps:
            if at == reads:
                step()
        reads += 1

    checkpoint_rows = repository.checkpoint_rows

    def rows_read(conn):
        writer_steps_due()
        return checkpoint_rows(conn)

    monkeypatch.setattr(repository, "checkpoint_rows", rows_read)
    watched = dataclasses.replace(vault, store=_ListingHook(vault.store, writer_steps_due))
    result = verify_audit(engine=pg_engine, vault=watched)
    assert reads == 2
    assert result.ok, result.problems
    for at, step in steps:
        if at == 2:
            step()
    monkeypatch.setattr(repository, "checkpoint_rows", checkpoint_rows)

    settled = verify_audit(engine=pg_engine, vault=vault)
    assert settled.ok and settled.checkpoints_checked == 2 and settled.unindexed == ()
    assert _row_keys(pg_engine) == _locked_checkpoints(vault)


def test_a_worker_killed_between_a_checkpoint_and_its_row_leaves_no_false_alarm(
    pg_engine, s3_vault, verifier, samples, app_settings, monkeypatch
):
    """Defect 2: the object stays without its row; it agrees with the chain, so it is not tampering, and
    the next worker to start indexes it."""
    vault, staging = s3_vault
    _archive(pg_engine, vault, staging, verifier, samples.valid, "d-killed")
    assert write_checkpoint(engine=pg_engine, vault=vault).ok
    _archive(pg_engine, vault, staging, verifier, samples.unsigned, "d-killed-b")
    orphan = write_checkpoint_killed_before_its_row(pg_engine, vault, monkeypatch)["key"]
    assert orphan in _locked_checkpoints(vault) and orphan not in _row_keys(pg_engine)

    result = verify_audit(engine=pg_engine, vault=vault)
    assert result.ok, result.problems
    assert result.checkpoints_checked == 2 and result.unindexed == (orphan,)
    assert result.checkpoint_key == orphan

    # The worker that starts next indexes it in its first checkpoint round, before anything else.
    worker = build_worker(app_settings, ArchiveDeps(engine=pg_engine, vault=vault, verifier=verifier))
    worker.checkpoint_round()
    assert worker.checkpoints_indexed and worker.checkpoint_reference.key == orphan
    assert _row_keys(pg_engine) == _locked_checkpoints(vault)
    indexed = verify_audit(engine=pg_engine, vault=vault)
    assert indexed.ok and indexed.unindexed == ()
    assert audit.index_locked_checkpoints(engine=pg_engine, vault=vault) == []  # rows are added once


def test_an_unindexed_checkpoint_of_an_earlier_round_is_indexed_when_the_worker_starts(
    pg_engine, s3_vault, verifier, samples, monkeypatch
):
    """Other workers went on checkpointing after the killed one: its object is no longer the newest."""
    vault, staging = s3_vault
    _archive(pg_engine, vault, staging, verifier, samples.valid, "d-older")
    killed = write_checkpoint_killed_before_its_row(pg_engine, vault, monkeypatch)
    orphan = killed["key"]
    with pg_engine.begin() as conn:
        audit_log.append(conn, audit_log_event("a later round"))
    # Another worker, which had read the orphan as the newest checkpoint in its previous round, goes on.
    seen = LockedCheckpoint(orphan, Checkpoint(killed["count"], killed["head_hash"], killed["created_at"]))
    later = write_checkpoint(engine=pg_engine, vault=vault, reference=seen)
    assert later.ok and later.checkpoint_key != orphan
    assert _row_keys(pg_engine) == [later.checkpoint_key]
    assert verify_audit(engine=pg_engine, vault=vault).unindexed == (orphan,)

    assert audit.index_locked_checkpoints(engine=pg_engine, vault=vault) == [orphan]
    assert sorted(_row_keys(pg_engine)) == sorted(_locked_checkpoints(vault))
    assert verify_audit(engine=pg_engine, vault=vault).ok


def test_a_rowless_checkpoint_that_contradicts_the_chain_stays_tampering_and_is_never_indexed(
    pg_engine, s3_vault, verifier, samples
):
    vault, staging = s3_vault
    _archive(pg_engine, vault, staging, verifier, samples.valid, "d-contra")
    assert write_checkpoint(engine=pg_engine, vault=vault).ok
    entries = list(audit_log.iter_entries(pg_engine))
    with pg_engine.begin() as conn:
        rechain_with_edit(conn, entries, seq=1)
        conn.execute(sa.delete(audit_checkpoints))
    assert audit.index_locked_checkpoints(engine=pg_engine, vault=vault) == []
    assert _row_keys(pg_engine) == []
    result = verify_audit(engine=pg_engine, vault=vault)
    assert not result.ok and result.unindexed == ()
    assert any("checkpoint rows were deleted" in p for p in result.problems)
    assert any("the database was rewritten" in p for p in result.problems)
