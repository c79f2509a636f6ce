"""Fixity: re-hashing archived objects on demand and in sweeps, and recording what was found."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import replace
from datetime import datetime, timedelta
from typing import IO, Any

from shared.objectstore.port import ChecksumMismatch as StoreChecksumMismatch
from shared.objectstore.port import ObjectNotFound, ObjectStore
from sqlalchemy.engine import Connection, Engine

from archive import messages
from archive.adapters import audit_log, repository
from archive.common import Clock, Vault, emit, utcnow
from archive.domain.audit import AuditEvent, entry_intact
from archive.domain.fixity import FixityOutcome, FixityRunSummary, judge, judge_record_against_audit

log = logging.getLogger(__name__)


def _measure(
    store: ObjectStore, bucket: str, key: str, sink: IO[bytes] | None = None
) -> tuple[str | None, str | None]:
    """SHA-256 and version of what the store returns now (None, None if it is gone)."""
    try:
        stat = store.stat(bucket, key)
    except ObjectNotFound:
        return None, None
    digest = hashlib.sha256()
    try:
        with store.open(bucket, key) as chunks:
            for chunk in chunks:
                digest.update(chunk)
                if sink is not None:
                    sink.write(chunk)
    except StoreChecksumMismatch:
        # The store noticed too; our own digest of every byte it returned is the evidence we report.
        pass
    except ObjectNotFound:
        return None, None
    return digest.hexdigest(), stat.version_id


def record_fixity_outcome(
    conn: Connection, row: Any, outcome: FixityOutcome, *, trigger: str, actor: str, now: datetime
) -> None:
    repository.set_fixity(conn, row.id, ok=outcome.ok, checked_at=now, detail=outcome.detail)
    if outcome.ok:
        return
    audit_log.append(
        conn,
        AuditEvent(
            action="fixity_failed",
            actor=actor,
            occurred_at=now,
            directive_id=row.directive_id,
            record_id=row.id,
            details={
                "expected_sha256": row.sha256,
                "actual_sha256": outcome.actual_sha256,
                "detail": outcome.detail,
                "trigger": trigger,
            },
        ),
    )
    emit(
        conn,
        messages.FIXITY_FAILED,
        {
            "record_id": row.id,
            "directive_id": row.directive_id,
            "bucket": row.bucket,
            "key": row.key,
            "expected_sha256": row.sha256,
            "actual_sha256": outcome.actual_sha256,
            "detail": outcome.detail,
            "detected_at": now.isoformat(),
            "trigger": trigger,
        },
    )


def check_record_row(
    vault: Vault, row: Any, sink: IO[bytes] | None = None, *, engine: Engine
) -> FixityOutcome:
    """Compares the row with the audit chain's record of the archiving, then the stored bytes with both.

    The bytes are still read when the row disagrees with the chain: the outcome then reports their digest.
    """
    with engine.connect() as conn:
        entry = audit_log.archived_entry(conn, row.id)
    actual, version = _measure(vault.store, row.bucket, row.key, sink)
    details = entry.details if entry is not None else {}
    against_audit = judge_record_against_audit(
        row.id,
        column_sha256=row.sha256,
        column_key=row.key,
        audited_seq=entry.seq if entry is not None else None,
        audited_intact=entry is not None and entry_intact(entry),
        audited_sha256=details.get("sha256"),
        audited_key=details.get("key"),
    )
    if against_audit is not None:
        return replace(against_audit, actual_sha256=actual)
    return judge(
        row.id,
        expected_sha256=row.sha256,
        actual_sha256=actual,
        expected_version=row.version_id,
        actual_version=version,
    )


def check_fixity(
    record_id: str,
    *,
    engine: Engine,
    vault: Vault,
    actor: str,
    trigger: str = "manual",
    clock: Clock = utcnow,
) -> FixityOutcome:
    """Re-reads the record's object now; a mismatch is stored on the record, audited and announced."""
    with engine.connect() as conn:
        row = repository.get_record_row(conn, record_id)
    outcome = check_record_row(vault, row, engine=engine)
    now = clock()
    with engine.begin() as conn:
        record_fixity_outcome(conn, row, outcome, trigger=trigger, actor=actor, now=now)
        audit_log.append(
            conn,
            AuditEvent(
                action="fixity_checked",
                actor=actor,
                occurred_at=now,
                directive_id=row.directive_id,
                record_id=row.id,
                details={"ok": outcome.ok, "detail": outcome.detail, "trigger": trigger},
            ),
        )
    return outcome


def run_fixity_sweep(
    *,
    engine: Engine,
    vault: Vault,
    period_seconds: int,
    batch_limit: int = 500,
    clock: Clock = utcnow,
    trigger: str = "sweep",
) -> FixityRunSummary:
    """Checks the records whose last check is older than the period (never-checked first), in one run."""
    started = clock()
    summary = FixityRunSummary(trigger=trigger, started_at=started)
    with engine.begin() as conn:
        run_id = repository.start_fixity_run(
            conn, trigger=trigger, actor="service:archive", started_at=started
        )
        due = repository.records_due_for_fixity(
            conn, checked_before=started - timedelta(seconds=period_seconds), limit=batch_limit
        )
    for row in due:
        outcome = check_record_row(vault, row, engine=engine)
        summary.add(outcome)
        with engine.begin() as conn:
            record_fixity_outcome(conn, row, outcome, trigger=trigger, actor="service:archive", now=clock())
    summary.finished_at = clock()
    with engine.begin() as conn:
        repository.finish_fixity_run(conn, run_id, summary)
    if summary.failed:
        log.error("fixity sweep found %d of %d records altered or missing", summary.failed, summary.checked)
    else:
        log.info("fixity sweep checked %d records, all intact", summary.checked)
    return summary
