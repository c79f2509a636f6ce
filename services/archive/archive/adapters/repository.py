"""Reads and writes of records, directives, task events, fixity runs and checkpoints (SQLAlchemy Core)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from archive.adapters.db import audit_checkpoints, directives, fixity_runs, records, task_events
from archive.domain.audit import CheckpointRow
from archive.domain.errors import RecordNotFound
from archive.domain.fixity import FixityRunSummary
from archive.domain.records import Record, fold


def _aware(moment: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes; everything we store is UTC.
    if moment is None:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


@dataclass(frozen=True)
class DocumentContext:
    """The directive metadata copied onto each record for searching."""

    issuer_name: str | None = None
    issuer_code: str | None = None
    number: str | None = None
    document_type: str | None = None
    issued_date: date | None = None
    subject: str | None = None

    @classmethod
    def from_metadata(cls, metadata: dict[str, Any] | None) -> DocumentContext:
        meta = metadata or {}
        issuer = meta.get("issuer") or {}
        number = meta.get("number")
        if not number and meta.get("code_number"):
            notation = meta.get("code_notation")
            number = f"{meta['code_number']}/{notation}" if notation else str(meta["code_number"])
        issued: date | None = None
        raw_date = meta.get("issued_date")
        if raw_date:
            try:
                issued = date.fromisoformat(str(raw_date)[:10])
            except ValueError:
                issued = None
        return cls(
            issuer_name=issuer.get("name") if isinstance(issuer, dict) else None,
            issuer_code=issuer.get("code") if isinstance(issuer, dict) else None,
            number=number,
            document_type=meta.get("document_type"),
            issued_date=issued,
            subject=meta.get("subject"),
        )


def record_row(record: Record, report: dict[str, Any], context: DocumentContext) -> dict[str, Any]:
    parts = [record.filename, context.issuer_name, context.number, context.subject, context.document_type]
    return {
        "id": record.id,
        "directive_id": record.directive_id,
        "source_event_id": record.source_event_id,
        "source_kind": record.source_kind,
        "source_ref": record.source_ref,
        "filename": record.filename,
        "content_type": record.content_type,
        "size": record.size,
        "sha256": record.sha256,
        "bucket": record.bucket,
        "key": record.key,
        "version_id": record.version_id,
        "retention_class": record.retention_class,
        "retain_until": record.retain_until,
        "lock_mode": record.lock_mode,
        "legal_hold": record.legal_hold,
        "legal_hold_reason": record.legal_hold_reason,
        "signature_status": record.signature_status,
        "signature_report": report,
        "archived_at": record.archived_at,
        "fixity_status": record.fixity_status,
        "fixity_checked_at": record.fixity_checked_at,
        "content_flags": list(record.content_flags),
        "issuer_name": context.issuer_name,
        "issuer_code": context.issuer_code,
        "number": context.number,
        "document_type": context.document_type,
        "issued_date": context.issued_date,
        "subject": context.subject,
        "search_text": fold(" ".join(p for p in parts if p)),
    }


def to_record(row: Any) -> Record:
    retain_until = _aware(row.retain_until)
    archived_at = _aware(row.archived_at)
    assert retain_until is not None and archived_at is not None
    return Record(
        id=row.id,
        directive_id=row.directive_id,
        source_event_id=row.source_event_id,
        source_kind=row.source_kind,
        source_ref=row.source_ref,
        filename=row.filename,
        content_type=row.content_type,
        size=int(row.size),
        sha256=row.sha256,
        bucket=row.bucket,
        key=row.key,
        version_id=row.version_id,
        retention_class=row.retention_class,
        retain_until=retain_until,
        lock_mode=row.lock_mode,
        legal_hold=bool(row.legal_hold),
        legal_hold_reason=row.legal_hold_reason,
        signature_status=row.signature_status,
        archived_at=archived_at,
        fixity_status=row.fixity_status,
        fixity_checked_at=_aware(row.fixity_checked_at),
        content_flags=tuple(row.content_flags or ()),
    )


def row_view(row: Any) -> dict[str, Any]:
    """A record row as a plain dict for the HTTP layer (datetimes made aware)."""
    data = dict(row._mapping)
    for name in ("retain_until", "archived_at", "fixity_checked_at"):
        data[name] = _aware(data.get(name))
    data.pop("search_text", None)
    data["content_flags"] = list(data.get("content_flags") or [])
    return data


def get_record_row(conn: Connection, record_id: str) -> Any:
    row = conn.execute(sa.select(records).where(records.c.id == record_id)).first()
    if row is None:
        raise RecordNotFound(f"no record {record_id}")
    return row


def record_exists(conn: Connection, source_event_id: str, source_ref: str) -> bool:
    found = conn.execute(
        sa.select(records.c.id).where(
            records.c.source_event_id == source_event_id, records.c.source_ref == source_ref
        )
    ).first()
    return found is not None


def insert_record(conn: Connection, row: dict[str, Any]) -> None:
    conn.execute(sa.insert(records).values(**row))


def directive_records(conn: Connection, directive_id: str) -> list[Any]:
    return list(
        conn.execute(
            sa.select(records).where(records.c.directive_id == directive_id).order_by(records.c.archived_at)
        ).all()
    )


@dataclass(frozen=True)
class RecordFilter:
    directive_id: str | None = None
    issuer: str | None = None
    number: str | None = None
    date_from: date | None = None
    date_to: date | None = None
    signature_status: str | None = None
    q: str | None = None


def search_records(conn: Connection, flt: RecordFilter, *, page: int, per_page: int) -> tuple[list[Any], int]:
    """Filters combine with AND; issuer and q ignore case and Vietnamese diacritics."""
    conditions: list[Any] = []
    if flt.directive_id:
        conditions.append(records.c.directive_id == flt.directive_id)
    if flt.issuer:
        like = f"%{fold(flt.issuer)}%"
        conditions.append(sa.or_(records.c.search_text.like(like), records.c.issuer_code == flt.issuer))
    if flt.number:
        conditions.append(records.c.number == flt.number)
    if flt.date_from is not None:
        conditions.append(
            sa.func.coalesce(records.c.issued_date, sa.cast(records.c.archived_at, sa.Date)) >= flt.date_from
        )
    if flt.date_to is not None:
        conditions.append(
            sa.func.coalesce(records.c.issued_date, sa.cast(records.c.archived_at, sa.Date)) <= flt.date_to
        )
    if flt.signature_status:
        conditions.append(records.c.signature_status == flt.signature_status)
    if flt.q:
        for word in fold(flt.q).split():
            conditions.append(records.c.search_text.like(f"%{word}%"))
    where = sa.and_(sa.true(), *conditions)
    total = conn.execute(sa.select(sa.func.count()).select_from(records).where(where)).scalar_one()
    rows = conn.execute(
        sa.select(records)
        .where(where)
        .order_by(records.c.archived_at.desc(), records.c.id)
        .limit(per_page)
        .offset((page - 1) * per_page)
    ).all()
    return list(rows), int(total)


def set_legal_hold(conn: Connection, record_id: str, *, on: bool, reason: str) -> None:
    conn.execute(
        sa.update(records).where(records.c.id == record_id).values(legal_hold=on, legal_hold_reason=reason)
    )


def set_fixity(conn: Connection, record_id: str, *, ok: bool, checked_at: datetime, detail: str) -> None:
    conn.execute(
        sa.update(records)
        .where(records.c.id == record_id)
        .values(fixity_status="ok" if ok else "failed", fixity_checked_at=checked_at, fixity_detail=detail)
    )


def records_due_for_fixity(conn: Connection, *, checked_before: datetime, limit: int) -> list[Any]:
    """Never-checked records first, then the longest unchecked."""
    rows = conn.execute(
        sa.select(records)
        .where(sa.or_(records.c.fixity_checked_at.is_(None), records.c.fixity_checked_at < checked_before))
        .order_by(records.c.fixity_checked_at.is_(None).desc(), records.c.fixity_checked_at, records.c.id)
        .limit(limit)
    ).all()
    return list(rows)


def count_records(conn: Connection) -> int:
    return int(conn.execute(sa.select(sa.func.count()).select_from(records)).scalar_one())


def upsert_directive(conn: Connection, values: dict[str, Any]) -> bool:
    """True when the directive was new; a second registration of the same id keeps the first.

    One statement on PostgreSQL and SQLite (insert, or nothing on a duplicate id), so two registrations
    of the same directive handled at once never fail on the primary key.
    """
    dialect = conn.dialect.name
    if dialect in ("postgresql", "sqlite"):
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        stmt = (
            insert(directives).values(**values).on_conflict_do_nothing().returning(directives.c.directive_id)
        )
        return conn.execute(stmt).first() is not None
    exists = conn.execute(
        sa.select(directives.c.directive_id).where(directives.c.directive_id == values["directive_id"])
    ).first()
    if exists is not None:
        return False
    conn.execute(sa.insert(directives).values(**values))
    return True


def get_directive(conn: Connection, directive_id: str) -> Any:
    return conn.execute(sa.select(directives).where(directives.c.directive_id == directive_id)).first()


def insert_task_event(conn: Connection, values: dict[str, Any]) -> None:
    conn.execute(sa.insert(task_events).values(**values))


def insert_task_events(conn: Connection, rows: list[dict[str, Any]]) -> None:
    conn.execute(sa.insert(task_events), rows)


def directive_task_events(conn: Connection, directive_id: str) -> list[Any]:
    return list(
        conn.execute(
            sa.select(task_events)
            .where(task_events.c.directive_id == directive_id)
            .order_by(task_events.c.id)
        ).all()
    )


def start_fixity_run(conn: Connection, *, trigger: str, actor: str, started_at: datetime) -> int:
    result = conn.execute(
        sa.insert(fixity_runs)
        .values(trigger=trigger, actor=actor, started_at=started_at, checked=0, failed=0, failures=[])
        .returning(fixity_runs.c.id)
    )
    return int(result.scalar_one())


def finish_fixity_run(conn: Connection, run_id: int, summary: FixityRunSummary) -> None:
    conn.execute(
        sa.update(fixity_runs)
        .where(fixity_runs.c.id == run_id)
        .values(
            finished_at=summary.finished_at,
            checked=summary.checked,
            failed=summary.failed,
            failures=[
                {"record_id": f.record_id, "actual_sha256": f.actual_sha256, "detail": f.detail}
                for f in summary.failures
            ],
        )
    )


def list_fixity_runs(conn: Connection, *, page: int, per_page: int) -> tuple[list[dict[str, Any]], int]:
    total = conn.execute(sa.select(sa.func.count()).select_from(fixity_runs)).scalar_one()
    rows = conn.execute(
        sa.select(fixity_runs).order_by(fixity_runs.c.id.desc()).limit(per_page).offset((page - 1) * per_page)
    ).all()
    items = []
    for row in rows:
        data = dict(row._mapping)
        data["started_at"] = _aware(data["started_at"])
        data["finished_at"] = _aware(data["finished_at"])
        items.append(data)
    return items, int(total)


def add_checkpoint(conn: Connection, *, key: str, count: int, head_hash: str, created_at: datetime) -> None:
    conn.execute(
        sa.insert(audit_checkpoints).values(key=key, count=count, head_hash=head_hash, created_at=created_at)
    )


def checkpoint_exists(conn: Connection, key: str) -> bool:
    found = conn.execute(sa.select(audit_checkpoints.c.id).where(audit_checkpoints.c.key == key)).first()
    return found is not None


def checkpoint_rows(conn: Connection) -> list[CheckpointRow]:
    """Every checkpoint row (the database's index of the locked objects), oldest first."""
    rows = conn.execute(
        sa.select(audit_checkpoints.c.key, audit_checkpoints.c.count, audit_checkpoints.c.head_hash).order_by(
            audit_checkpoints.c.id
        )
    ).all()
    return [CheckpointRow(key=r.key, count=int(r.count), head_hash=r.head_hash) for r in rows]
