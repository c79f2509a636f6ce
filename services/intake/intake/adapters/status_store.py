"""Outgoing statuses in the database: appended under the gap-free cursor, read back page by page.

A status is written by the caller's transaction (the registration, a rejection, the consumer of a routing
event), so it exists exactly when what caused it does. The cursor comes from one counter row whose lock is
held to the commit: statuses become visible in cursor order, with no gap a reader could skip past.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine, RowMapping

from intake.adapters.tables import directive_tasks, directives, status_cursor, status_updates
from intake.domain.edxml import Organ, ResponseFor, StaffInfo
from intake.domain.status import ARRIVAL_PLACEHOLDER, TaskState, status_packet

CURSOR_ROW = 1


@dataclass(frozen=True)
class NewStatus:
    """A status to append; `description` may hold {arrival_number}, filled in where the number is taken.

    `directive_id` is None for a refused edXML packet (no directive was made): it is addressed by its
    sender (`sender_code`) and the DocumentId in `response_for`. `dedupe_key` makes "each once" hold: the
    database refuses a second status with the same key (default: one per directive and code)."""

    directive_id: str | None
    status_code: str
    description: str
    occurred_at: datetime
    response_for: ResponseFor
    staff: StaffInfo | None = None
    sender_code: str | None = None
    submitted_by: str | None = None
    dedupe_key: str | None = None
    id: str = field(default_factory=lambda: str(uuid.uuid4()))

    @property
    def key(self) -> str:
        return self.dedupe_key or f"{self.directive_id}:{self.status_code}"


@dataclass(frozen=True)
class StatusUpdate:
    id: str
    cursor: int
    directive_id: str | None
    status_code: str
    description: str
    occurred_at: datetime
    response_for: ResponseFor
    staff: StaffInfo | None
    sender_code: str | None
    submitted_by: str | None

    def packet(self, sender: Organ) -> str:
        return status_packet(
            sender=sender,
            response=self.response_for,
            code=self.status_code,
            text=self.description,
            occurred_at=self.occurred_at,
            staff=self.staff,
        )


def _staff_json(staff: StaffInfo | None) -> dict[str, str | None] | None:
    if staff is None:
        return None
    return {
        "department": staff.department,
        "staff": staff.staff,
        "mobile": staff.mobile,
        "email": staff.email,
    }


def _response_json(response: ResponseFor) -> dict[str, str | None]:
    return {
        "organ_id": response.organ_id,
        "code": response.code,
        "promulgation_date": None
        if response.promulgation_date is None
        else response.promulgation_date.isoformat(),
        "document_id": response.document_id,
    }


def status_row(status: NewStatus, *, arrival_number: int | None = None) -> dict[str, Any]:
    text = status.description
    if arrival_number is not None:
        text = text.replace(ARRIVAL_PLACEHOLDER, str(arrival_number))
    return {
        "id": status.id,
        "directive_id": status.directive_id,
        "status_code": status.status_code,
        "description": text,
        "occurred_at": status.occurred_at,
        "staff": _staff_json(status.staff),
        "response_for": _response_json(status.response_for),
        "sender_code": status.sender_code,
        "submitted_by": status.submitted_by,
        "dedupe_key": status.key,
    }


def take_cursors(conn: Connection, count: int) -> int:
    """Reserves `count` cursors; answers the last. The counter row stays locked until the commit."""
    dialect = conn.dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = (
        insert(status_cursor)
        .values(id=CURSOR_ROW, last_cursor=count)
        .on_conflict_do_update(
            index_elements=[status_cursor.c.id],
            set_={"last_cursor": status_cursor.c.last_cursor + count},
        )
        .returning(status_cursor.c.last_cursor)
    )
    return int(conn.execute(statement).scalar_one())


def append_statuses(
    conn: Connection, statuses: Sequence[NewStatus], *, arrival_number: int | None = None
) -> None:
    """Appends `statuses` in order, inside the caller's transaction."""
    if not statuses:
        return
    last = take_cursors(conn, len(statuses))
    first = last - len(statuses) + 1
    rows = [
        {**status_row(status, arrival_number=arrival_number), "cursor": first + position}
        for position, status in enumerate(statuses)
    ]
    conn.execute(sa.insert(status_updates), rows)


def append_new_statuses(conn: Connection, statuses: Sequence[NewStatus]) -> int:
    """Appends those of `statuses` whose key is not recorded yet (each status once); answers how many."""
    fresh = [status for status in statuses if not already_recorded(conn, status.key)]
    append_statuses(conn, fresh)
    return len(fresh)


def statuses_param(statuses: Sequence[NewStatus]) -> list[dict[str, Any]]:
    """The `statuses` parameter of registration_statuses_postgresql: one JSON record per status, its
    `cursor` the status's place among them (1, 2, …), which the statement turns into its cursor."""
    return [
        {**status_row(status), "occurred_at": status.occurred_at.isoformat(), "cursor": position}
        for position, status in enumerate(statuses, start=1)
    ]


# PostgreSQL: data-modifying CTEs that append statuses within a larger statement (SQL text). The cursor
# UPSERT reads a CTE of one row that depends on the statement's other writes, so it runs after them: every
# status writer takes the cursor row last, and none waits for it while holding it. Parameters: `statuses`
# (statuses_param, as JSON text, each status's `cursor` its place among them) and `status_count`.
# - In a registration, after `numbered` (the directive's INSERT … RETURNING arrival_number);
#   ARRIVAL_PLACEHOLDER (`{arrival_number}`) in a description becomes the number the statement took.
REGISTRATION_STATUSES_POSTGRESQL = (
    "cursor_taken AS (INSERT INTO status_cursor AS c (id, last_cursor) "
    "SELECT 1, CAST(:status_count AS bigint) FROM numbered "
    "ON CONFLICT (id) DO UPDATE SET last_cursor = c.last_cursor + excluded.last_cursor "
    "RETURNING c.last_cursor),\n"
    "statuses_appended AS (INSERT INTO status_updates (id, cursor, directive_id, status_code, description, "
    "occurred_at, staff, response_for, sender_code, submitted_by, dedupe_key) "
    "SELECT s.id, cursor_taken.last_cursor - CAST(:status_count AS bigint) + s.cursor, s.directive_id, "
    "s.status_code, replace(s.description, '{arrival_number}', CAST(numbered.arrival_number AS text)), "
    "s.occurred_at, s.staff, s.response_for, s.sender_code, s.submitted_by, s.dedupe_key "
    "FROM json_populate_recordset(NULL::status_updates, CAST(:statuses AS json)) AS s, cursor_taken, "
    "numbered)"
)
# - After a task event's `upserted` (its tasks' INSERT … RETURNING, one row each): `written` counts them.
TASK_EVENT_STATUSES_POSTGRESQL = (
    "written AS (SELECT count(*) AS tasks FROM upserted),\n"
    "cursor_taken AS (INSERT INTO status_cursor AS c (id, last_cursor) "
    "SELECT 1, CAST(:status_count AS bigint) FROM written "
    "ON CONFLICT (id) DO UPDATE SET last_cursor = c.last_cursor + excluded.last_cursor "
    "RETURNING c.last_cursor),\n"
    "statuses_appended AS (INSERT INTO status_updates (id, cursor, directive_id, status_code, description, "
    "occurred_at, staff, response_for, sender_code, submitted_by, dedupe_key) "
    "SELECT s.id, cursor_taken.last_cursor - CAST(:status_count AS bigint) + s.cursor, s.directive_id, "
    "s.status_code, s.description, s.occurred_at, s.staff, s.response_for, s.sender_code, s.submitted_by, "
    "s.dedupe_key FROM json_populate_recordset(NULL::status_updates, CAST(:statuses AS json)) AS s, "
    "cursor_taken)"
)


# -- reads -------------------------------------------------------------------------------------------------


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _update(row: RowMapping) -> StatusUpdate:
    response = row["response_for"] or {}
    staff = row["staff"]
    promulgation = response.get("promulgation_date")
    return StatusUpdate(
        id=row["id"],
        cursor=int(row["cursor"]),
        directive_id=row["directive_id"],
        status_code=row["status_code"],
        description=row["description"],
        occurred_at=_aware(row["occurred_at"]),
        response_for=ResponseFor(
            organ_id=response.get("organ_id"),
            code=response.get("code"),
            promulgation_date=None if promulgation is None else date.fromisoformat(promulgation),
            document_id=response.get("document_id"),
        ),
        staff=None if staff is None else StaffInfo(**staff),
        sender_code=row["sender_code"],
        submitted_by=row["submitted_by"],
    )


class StatusStore:
    """Reads of the status stream, and the per-directive state its writers need."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def page(
        self,
        *,
        after: int,
        limit: int,
        submitted_by: str | None = None,
        directive_id: str | None = None,
    ) -> list[StatusUpdate]:
        """Statuses with a cursor above `after`, in cursor order; filtered to a submitter or a directive."""
        query = sa.select(status_updates).where(status_updates.c.cursor > after)
        if submitted_by is not None:
            query = query.where(status_updates.c.submitted_by == submitted_by)
        if directive_id is not None:
            query = query.where(status_updates.c.directive_id == directive_id)
        query = query.order_by(status_updates.c.cursor).limit(limit)
        with self.engine.connect() as conn:
            return [_update(row) for row in conn.execute(query).mappings()]

    def get_many(self, conn: Connection, ids: Sequence[str]) -> dict[str, StatusUpdate]:
        rows = conn.execute(sa.select(status_updates).where(status_updates.c.id.in_(list(ids)))).mappings()
        return {row["id"]: _update(row) for row in rows}

    def head(self) -> int:
        """The last cursor given out (0 before the first status)."""
        with self.engine.connect() as conn:
            return head(conn)


def head(conn: Connection) -> int:
    value = conn.execute(
        sa.select(status_cursor.c.last_cursor).where(status_cursor.c.id == CURSOR_ROW)
    ).scalar_one_or_none()
    return 0 if value is None else int(value)


def already_recorded(conn: Connection, dedupe_key: str) -> bool:
    """True when a status with this key exists (it is recorded once)."""
    found = conn.execute(
        sa.select(status_updates.c.id).where(status_updates.c.dedupe_key == dedupe_key)
    ).first()
    return found is not None


def emitted_codes(conn: Connection, directive_id: str) -> list[str]:
    return list(
        conn.execute(
            sa.select(status_updates.c.status_code)
            .where(status_updates.c.directive_id == directive_id)
            .order_by(status_updates.c.cursor)
        ).scalars()
    )


def lock_directive(conn: Connection, directive_id: str) -> RowMapping | None:
    """The directive's row, locked to the end of the transaction: its statuses are derived one at a time."""
    query = sa.select(directives).where(directives.c.id == directive_id)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    return conn.execute(query).mappings().first()


def task_states(conn: Connection, directive_id: str) -> list[TaskState]:
    rows = conn.execute(
        sa.select(directive_tasks).where(directive_tasks.c.directive_id == directive_id)
    ).mappings()
    return [
        TaskState(
            task_id=row["task_id"],
            unit=row["unit"],
            role=row["role"],
            status=row["status"],
            started=bool(row["started"]),
        )
        for row in rows
    ]
