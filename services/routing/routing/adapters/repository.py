"""Row ↔ JSON translation for the routing tables: the task document every API and message uses."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa
from shared.db import json_rows, json_rows_insert
from shared.inbox import claim
from shared.outbox import outbox_insert_postgresql
from sqlalchemy.engine import Connection

from routing.adapters import tables as t
from routing.domain.units import Unit


def aware(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; everything is stored in UTC."""
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def iso(value: datetime | date | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return aware(value).isoformat()  # type: ignore[union-attr]
    return value.isoformat()


def unit_from_row(row: Any) -> Unit:
    return Unit(row.code, row.name, tuple(row.groups or ()), tuple(row.tags or ()), bool(row.active))


def unit_json(row: Any) -> dict[str, Any]:
    return {
        "code": row.code,
        "name": row.name,
        "groups": list(row.groups or ()),
        "tags": list(row.tags or ()),
        "active": bool(row.active),
        "created_at": iso(row.created_at),
        "updated_at": iso(row.updated_at),
    }


def all_units(conn: Connection) -> list[Unit]:
    return [unit_from_row(r) for r in conn.execute(sa.select(t.units).order_by(t.units.c.code))]


TASK_COLUMNS = [
    *t.tasks.c,
    t.directives.c.number.label("d_number"),
    t.directives.c.subject.label("d_subject"),
    t.directives.c.issuer.label("d_issuer"),
    t.directives.c.urgency.label("d_urgency"),
    t.directives.c.arrival_number.label("d_arrival_number"),
    t.directives.c.arrival_date.label("d_arrival_date"),
    t.directives.c.attachments.label("d_attachments"),
]


def task_query() -> sa.Select[Any]:
    return sa.select(*TASK_COLUMNS).join(t.directives, t.directives.c.id == t.tasks.c.directive_id)


def task_json(row: Any, *, now: datetime | None = None) -> dict[str, Any]:
    """The task as units see it over REST and on their queue (routing.task_offered payload)."""
    now = now or datetime.now(UTC)
    due_at = aware(row.due_at)
    open_ = row.status in ("assigned", "received", "in_progress")
    return {
        "id": row.id,
        "directive_id": row.directive_id,
        "directive_number": row.d_number,
        "subject": row.d_subject,
        "issuer": row.d_issuer,
        "urgency": row.d_urgency,
        "arrival_number": row.d_arrival_number,
        "arrival_date": iso(row.d_arrival_date),
        "unit": row.unit,
        "role": row.role,
        "title": row.title,
        "instructions": row.instructions,
        "due_date": iso(row.due_date),
        "due_at": iso(due_at),
        "status": row.status,
        "overdue": bool(row.overdue_at) or bool(open_ and due_at is not None and due_at < now),
        "lease_expires_at": iso(row.lease_expires_at),
        "rule_id": row.rule_id,
        "rule_version": row.rule_version,
        "reply_number": row.reply_number,
        "attachments": [
            {
                "id": a["id"],
                "filename": a.get("filename"),
                "content_type": a.get("content_type"),
                "size": a.get("size"),
                "sha256": a.get("sha256"),
                "href": f"/v1/tasks/{row.id}/attachments/{a['id']}",
            }
            for a in (row.d_attachments or [])
        ],
        "created_at": iso(row.created_at),
        "updated_at": iso(row.updated_at),
    }


def history_json(row: Any) -> dict[str, Any]:
    return {
        "at": iso(row.at),
        "from_status": row.from_status,
        "to_status": row.to_status,
        "actor": row.actor,
        "note": row.note,
        "reply_number": row.reply_number,
        "report": row.report,
    }


def _columns(table: sa.Table) -> list[str]:
    """The columns a new row names: all but an autoincrement key, which the database draws."""
    return [c.name for c in table.columns if not (c.primary_key and c.autoincrement is True)]


@functools.cache
def _task_creation_postgresql(with_directive: bool) -> sa.Select[Any]:
    """PostgreSQL: the tasks, their history rows and their outbox rows (and the directive) as one statement.

    Parameters: `tasks`, `history` and `outbox_rows` (and `directive`), each a json_rows array. Every
    insert is a data-modifying CTE of the one statement, so the whole fan-out is one round trip whatever
    its size; the foreign keys are checked at the end of the statement, when all rows exist.
    """
    inserts = [
        json_rows_insert(t.tasks, "tasks", _columns(t.tasks)).cte("new_tasks"),
        json_rows_insert(t.task_history, "history", _columns(t.task_history)).cte("new_history"),
        outbox_insert_postgresql(t.outbox, "outbox_rows").cte("queued"),
    ]
    if with_directive:
        directive = json_rows_insert(t.directives, "directive", _columns(t.directives))
        inserts.insert(0, directive.cte("new_directive"))
    return sa.select(sa.literal_column("1")).add_cte(*inserts)


@dataclass(frozen=True)
class Admission:
    """What routing a delivered directive_registered needs to know first (see `admit_directive`)."""

    claimed: bool  # the inbox claim is this delivery's: not a redelivery of a handled message
    known: bool  # the directive is already stored (routed under another message id)
    revision: int | None  # the reference revision, read with the claim (None: not read)


# PostgreSQL: the inbox claim (shared.inbox.claim's INSERT … ON CONFLICT DO NOTHING), the directive's
# existence and the reference revision in one round trip instead of three.
_ADMIT_POSTGRESQL = sa.text(
    "WITH claimed AS (INSERT INTO inbox (message_id, consumer, processed_at)"
    " VALUES (:message_id, :consumer, :processed_at) ON CONFLICT DO NOTHING RETURNING 1)"
    " SELECT EXISTS (SELECT 1 FROM claimed) AS claimed,"
    " EXISTS (SELECT 1 FROM directives WHERE id = :directive_id) AS known,"
    " (SELECT revision FROM reference_revision WHERE id = 1) AS revision"
)


def admit_directive(conn: Connection, message_id: str, consumer: str, directive_id: str) -> Admission:
    """Claims `message_id` for `consumer` in the caller's transaction and tells whether the directive is
    stored already; on PostgreSQL also reads the reference revision, all in one statement.

    The claim behaves as `shared.inbox.claim`: a concurrent claim of the same id waits on the primary key
    until the first transaction ends, and a claim that rolls back with its transaction is made again by
    the redelivery."""
    if conn.dialect.name == "postgresql":
        row = conn.execute(
            _ADMIT_POSTGRESQL,
            {
                "message_id": message_id,
                "consumer": consumer,
                "processed_at": datetime.now(UTC),
                "directive_id": directive_id,
            },
        ).one()
        return Admission(bool(row.claimed), bool(row.known), int(row.revision))
    if not claim(conn, t.inbox, message_id, consumer):
        return Admission(claimed=False, known=False, revision=None)
    known = conn.execute(sa.select(t.directives.c.id).where(t.directives.c.id == directive_id)).first()
    return Admission(claimed=True, known=known is not None, revision=None)


def insert_tasks(
    conn: Connection,
    *,
    directive: Mapping[str, Any] | None,
    tasks: Sequence[Mapping[str, Any]],
    history: Sequence[Mapping[str, Any]],
    outbox: Sequence[Mapping[str, Any]],
) -> None:
    """Writes new task rows with their history and outbox rows, and `directive` first when it is new.

    PostgreSQL: one statement. Other databases: one INSERT per table (several rows each).
    """
    if conn.dialect.name == "postgresql" and tasks:
        params = {"tasks": json_rows(tasks), "history": json_rows(history), "outbox_rows": json_rows(outbox)}
        if directive is not None:
            params["directive"] = json_rows([directive])
        conn.execute(_task_creation_postgresql(directive is not None), params)
        return
    if directive is not None:
        conn.execute(sa.insert(t.directives).values(**directive))
    for table, rows in ((t.tasks, tasks), (t.task_history, history), (t.outbox, outbox)):
        if rows:
            conn.execute(sa.insert(table), list(rows))
