"""Reading records: audited views, verified content and the legal hold an admin sets or lifts."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import IO, Any

from sqlalchemy.engine import Connection, Engine

from archive.adapters import audit_log, repository
from archive.common import Clock, Vault, utcnow
from archive.domain.audit import AuditEvent
from archive.domain.errors import FixityFailed
from archive.domain.records import change_legal_hold
from archive.fixity import check_record_row, record_fixity_outcome

SPOOL_IN_MEMORY = 8 * 1024 * 1024


@dataclass
class VerifiedContent:
    """The record's bytes, already re-hashed, in a temporary file the caller streams and closes."""

    record: dict[str, Any]
    file: IO[bytes]
    size: int

    def chunks(self, size: int = 64 * 1024) -> Iterator[bytes]:
        try:
            self.file.seek(0)
            while True:
                chunk = self.file.read(size)
                if not chunk:
                    return
                yield chunk
        finally:
            self.file.close()


def _audit_read(
    conn: Connection, row: Any, *, actor: str, action: str, now: datetime, details: dict[str, Any]
) -> None:
    audit_log.append(
        conn,
        AuditEvent(
            action=action,
            actor=actor,
            occurred_at=now,
            directive_id=row.directive_id,
            record_id=row.id,
            details={"filename": row.filename, "sha256": row.sha256, **details},
        ),
    )


def view_record(record_id: str, *, engine: Engine, actor: str, clock: Clock = utcnow) -> dict[str, Any]:
    """A record's metadata and signature report; the look is audited too."""
    with engine.begin() as conn:
        row = repository.get_record_row(conn, record_id)
        _audit_read(conn, row, actor=actor, action="record_viewed", now=clock(), details={})
    return repository.row_view(row)


def read_verified_content(
    record_id: str, *, engine: Engine, vault: Vault, actor: str, clock: Clock = utcnow
) -> VerifiedContent:
    """Spools the bytes while hashing them; only bytes that match the record ever leave this function."""
    with engine.connect() as conn:
        row = repository.get_record_row(conn, record_id)
    spool: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)  # noqa: SIM115 - closed by caller
    try:
        outcome = check_record_row(vault, row, sink=spool, engine=engine)
        now = clock()
        with engine.begin() as conn:
            if not outcome.ok:
                record_fixity_outcome(conn, row, outcome, trigger="read", actor=actor, now=now)
            else:
                repository.set_fixity(conn, row.id, ok=True, checked_at=now, detail="ok (on read)")
                _audit_read(conn, row, actor=actor, action="record_read", now=now, details={"size": row.size})
    except BaseException:
        spool.close()
        raise
    if not outcome.ok:
        spool.close()
        raise FixityFailed(record_id, f"record {record_id}: {outcome.detail}; the bytes were not served")
    return VerifiedContent(record=repository.row_view(row), file=spool, size=int(row.size))


def set_legal_hold(
    record_id: str,
    *,
    on: bool,
    reason: str | None,
    actor: str,
    engine: Engine,
    vault: Vault,
    clock: Clock = utcnow,
) -> dict[str, Any]:
    """Sets or lifts the hold on the object first (the store is the authority), then records and audits it."""
    with engine.connect() as conn:
        row = repository.get_record_row(conn, record_id)
    changed = change_legal_hold(repository.to_record(row), on=on, reason=reason)
    vault.store.set_legal_hold(row.bucket, row.key, on)
    with engine.begin() as conn:
        repository.set_legal_hold(conn, record_id, on=on, reason=changed.legal_hold_reason or "")
        audit_log.append(
            conn,
            AuditEvent(
                action="legal_hold_set" if on else "legal_hold_lifted",
                actor=actor,
                occurred_at=clock(),
                directive_id=row.directive_id,
                record_id=row.id,
                details={"reason": changed.legal_hold_reason, "was": bool(row.legal_hold)},
            ),
        )
        return repository.row_view(repository.get_record_row(conn, record_id))
