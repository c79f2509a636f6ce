"""The audit log in the database: serialised, hash-chained appends; listing; walking for verification."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from archive.adapters.db import audit_entries, audit_head
from archive.domain.audit import (
    GENESIS_HASH,
    AuditEntry,
    AuditEvent,
    ChainVerification,
    ChainWalker,
    next_entry,
    utc_text,
)

WALK_BATCH = 1000


def _details_text(details: Any) -> str:
    return json.dumps(details, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def append(conn: Connection, event: AuditEvent) -> AuditEntry:
    """Appends inside the caller's transaction (see append_many)."""
    return append_many(conn, [event])[0]


def append_many(conn: Connection, events: Sequence[AuditEvent]) -> list[AuditEntry]:
    """Appends the events, in order, inside the caller's transaction: one lock, one read, one insert.

    Updating the single audit_head row first takes a row lock on PostgreSQL and the write lock on SQLite,
    so two workers can never read the same head and fork the chain; the lock ends with the transaction,
    so callers append last, just before committing, to keep other writers waiting as briefly as possible.
    """
    if not events:
        return []
    conn.execute(
        sa.update(audit_head).where(audit_head.c.id == 1).values(appends=audit_head.c.appends + len(events))
    )
    last = conn.execute(
        sa.select(audit_entries.c.seq, audit_entries.c.hash).order_by(audit_entries.c.seq.desc()).limit(1)
    ).first()
    prev_seq, prev_hash = (int(last.seq), str(last.hash)) if last is not None else (0, GENESIS_HASH)
    entries: list[AuditEntry] = []
    for event in events:
        entry = next_entry(event, prev_seq=prev_seq, prev_hash=prev_hash)
        entries.append(entry)
        prev_seq, prev_hash = entry.seq, entry.hash
    conn.execute(
        sa.insert(audit_entries),
        [
            {
                "seq": entry.seq,
                "action": entry.action,
                "actor": entry.actor,
                "occurred_at": utc_text(entry.occurred_at),
                "directive_id": entry.directive_id,
                "record_id": entry.record_id,
                "source_event_id": entry.source_event_id,
                "details": _details_text(entry.details),
                "prev_hash": entry.prev_hash,
                "hash": entry.hash,
            }
            for entry in entries
        ],
    )
    return entries


def _entry(row: Any) -> AuditEntry:
    return AuditEntry(
        seq=int(row.seq),
        action=row.action,
        actor=row.actor,
        occurred_at=datetime.fromisoformat(row.occurred_at),
        directive_id=row.directive_id,
        record_id=row.record_id,
        source_event_id=row.source_event_id,
        details=json.loads(row.details),
        prev_hash=row.prev_hash,
        hash=row.hash,
    )


def iter_entries(engine: Engine, *, after: int = 0, batch: int = WALK_BATCH) -> Iterator[AuditEntry]:
    """Entries after seq `after` in seq order, fetched in batches (keyset pagination keeps memory flat)."""
    while True:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.select(audit_entries)
                .where(audit_entries.c.seq > after)
                .order_by(audit_entries.c.seq)
                .limit(batch)
            ).all()
        if not rows:
            return
        for row in rows:
            yield _entry(row)
        after = int(rows[-1].seq)


def verify(engine: Engine) -> ChainVerification:
    """Walks the chain from the first entry; stops at the first entry that does not fit."""
    walker = ChainWalker()
    for entry in iter_entries(engine):
        if not walker.feed(entry):
            break
    return walker.result()


def hash_at(engine: Engine, seq: int) -> str | None:
    """The stored hash of entry `seq`; an empty chain's "hash" is the genesis value."""
    if seq == 0:
        return GENESIS_HASH
    with engine.connect() as conn:
        value = conn.execute(sa.select(audit_entries.c.hash).where(audit_entries.c.seq == seq)).scalar()
    return None if value is None else str(value)


def head(engine: Engine) -> tuple[int, str]:
    """The current count and head hash as stored (not verified)."""
    with engine.connect() as conn:
        row = conn.execute(
            sa.select(audit_entries.c.seq, audit_entries.c.hash).order_by(audit_entries.c.seq.desc()).limit(1)
        ).first()
    return (int(row.seq), str(row.hash)) if row is not None else (0, GENESIS_HASH)


def list_entries(
    conn: Connection,
    *,
    directive_id: str | None = None,
    actor: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    page: int = 1,
    per_page: int = 50,
) -> tuple[list[AuditEntry], int]:
    """A page of entries (oldest first) matching the filters, and the total that match."""
    conditions: list[Any] = []
    if directive_id:
        conditions.append(audit_entries.c.directive_id == directive_id)
    if actor:
        conditions.append(audit_entries.c.actor == actor)
    if since is not None:
        conditions.append(audit_entries.c.occurred_at >= utc_text(since))
    if until is not None:
        conditions.append(audit_entries.c.occurred_at <= utc_text(until))
    where = sa.and_(sa.true(), *conditions)
    total = conn.execute(sa.select(sa.func.count()).select_from(audit_entries).where(where)).scalar_one()
    rows = conn.execute(
        sa.select(audit_entries)
        .where(where)
        .order_by(audit_entries.c.seq)
        .limit(per_page)
        .offset((page - 1) * per_page)
    ).all()
    return [_entry(r) for r in rows], int(total)


def archived_entry(conn: Connection, record_id: str) -> AuditEntry | None:
    """The `record_archived` entry the chain holds for a record (the first, should there be more)."""
    row = conn.execute(
        sa.select(audit_entries)
        .where(audit_entries.c.record_id == record_id, audit_entries.c.action == "record_archived")
        .order_by(audit_entries.c.seq)
        .limit(1)
    ).first()
    return None if row is None else _entry(row)


def directive_entries(conn: Connection, directive_id: str) -> list[AuditEntry]:
    rows = conn.execute(
        sa.select(audit_entries)
        .where(audit_entries.c.directive_id == directive_id)
        .order_by(audit_entries.c.seq)
    ).all()
    return [_entry(r) for r in rows]
