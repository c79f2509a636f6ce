"""Audit checkpoints against PostgreSQL and each S3 server (moto, Ceph RGW): the locked bucket, not the
database, is the reference."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from archive.adapters import audit_log
from archive.adapters.db import audit_checkpoints, audit_entries, outbox, records
from archive.archiving import handle_directive_registered
from archive.audit import LockedCheckpoint, verify_audit, write_checkpoint
from archive.domain.audit import CHECKPOINT_PREFIX, AuditEvent
from archive.fixity import check_fixity
from archive_testkit import directive_event, make_vault, rechain_with_edit, stage

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
