"""The task ledger's shared writes: history, status moves, offers and events through the outbox, roll-up."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import sqlalchemy as sa
from shared.envelope import Envelope
from shared.naming import TASKS_EXCHANGE, events_exchange
from shared.outbox import add_to_outbox
from sqlalchemy.engine import Connection

from routing.adapters import tables as t
from routing.adapters.repository import TASK_COLUMNS, history_json, task_json, task_query
from routing.domain.errors import InvalidTransition, TaskNotFound
from routing.domain.tasks import Status, check_move
from routing.messages import TASK_OFFERED

log = logging.getLogger(__name__)

SERVICE = "routing"
EVENTS = events_exchange(SERVICE)
CONSUMER = "routing"
# A directive in one of these states keeps it whatever its tasks do: the roll-up never overwrites it.
FINAL_DIRECTIVE_STATUSES = frozenset({"revoked", "replaced", "rejected"})


def utcnow() -> datetime:
    return datetime.now(UTC)


def add_history(conn: Connection, task_id: str, frm: str | None, to: str, actor: str, **extra: Any) -> None:
    conn.execute(
        sa.insert(t.task_history).values(
            task_id=task_id, at=utcnow(), from_status=frm, to_status=to, actor=actor, **extra
        )
    )


def load_task(conn: Connection, task_id: str) -> Any:
    return conn.execute(task_query().where(t.tasks.c.id == task_id)).first()


def offer(
    conn: Connection,
    task_id: str,
    *,
    event_type: str = TASK_OFFERED,
    extra: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Puts the task on its unit's queue through the outbox (exchange routing.tasks, key = unit code).

    The payload is the task document, plus what `extra` derives from it (a reminder's message)."""
    row = load_task(conn, task_id)
    payload = task_json(row)
    if extra is not None:
        payload |= extra(payload)
    add_to_outbox(
        conn,
        t.outbox,
        Envelope.new(event_type, payload, producer=SERVICE),
        exchange=TASKS_EXCHANGE,
        routing_key=row.unit,
    )
    return payload


def emit(conn: Connection, event: str, payload: dict[str, Any]) -> None:
    add_to_outbox(
        conn, t.outbox, Envelope.new(f"routing.{event}", payload, producer=SERVICE), exchange=EVENTS
    )


def _rollup(statuses: list[str]) -> str:
    """A directive's status from its tasks' statuses."""
    live = [s for s in statuses if s != Status.CANCELLED.value]
    if not live or Status.REJECTED.value in live:
        return "needs_assignment"
    if all(s == Status.COMPLETED.value for s in live):
        return "completed"
    return "routed"


def refresh_directive_statuses(conn: Connection, directive_ids: Iterable[str]) -> dict[str, str]:
    """Recomputes the status of each directive from its tasks in one query; answers them by id."""
    wanted = sorted(set(directive_ids))
    if not wanted:
        return {}
    rows = conn.execute(
        sa.select(t.tasks.c.directive_id, t.tasks.c.status, t.directives.c.status.label("d_status"))
        .join(t.directives, t.directives.c.id == t.tasks.c.directive_id)
        .where(t.tasks.c.directive_id.in_(wanted))
    ).all()
    statuses: dict[str, list[str]] = {}
    stored: dict[str, str] = {}
    for row in rows:
        statuses.setdefault(row.directive_id, []).append(row.status)
        stored[row.directive_id] = row.d_status
    result = {directive_id: _rollup(statuses.get(directive_id, [])) for directive_id in wanted}
    # Most changes (an ack, progress) leave the directive's status as it was: skip the write, which would
    # also serialise concurrent changes of one directive's tasks on its row lock.
    changed: dict[str, list[str]] = {}
    for directive_id, status in result.items():
        if stored.get(directive_id) in FINAL_DIRECTIVE_STATUSES:
            result[directive_id] = stored[directive_id]
            continue
        if stored.get(directive_id) != status:
            changed.setdefault(status, []).append(directive_id)
    for status, ids in changed.items():
        conn.execute(
            sa.update(t.directives)
            .where(t.directives.c.id.in_(ids))
            .values(status=status, updated_at=utcnow())
        )
    return result


def refresh_directive_status(conn: Connection, directive_id: str) -> str:
    return refresh_directive_statuses(conn, [directive_id])[directive_id]


def move(
    conn: Connection,
    task: Any,
    target: Status,
    *,
    actor: str,
    note: str | None = None,
    reply_number: str | None = None,
    report: dict[str, Any] | None = None,
) -> Any:
    """Moves the task to `target` (guarded by its current status); returns the task row as it is now."""
    current = Status(task.status)
    check_move(current, target, note=note)
    values: dict[str, Any] = {"status": target.value, "updated_at": utcnow()}
    if reply_number is not None:
        values["reply_number"] = reply_number
    if target != Status.ASSIGNED:
        values["lease_expires_at"] = None
    done = conn.execute(
        sa.update(t.tasks).where(t.tasks.c.id == task.id, t.tasks.c.status == current.value).values(**values)
    )
    if done.rowcount != 1:
        raise InvalidTransition("the task changed meanwhile; read it again")
    add_history(
        conn, task.id, current.value, target.value, actor, note=note, reply_number=reply_number, report=report
    )
    row = _changed(conn, task, values)
    payload = status_changed_payload(
        row,
        current,
        target,
        note=note,
        reply_number=reply_number,
        actor=actor,
        at=values["updated_at"],
        task=task_json(row),
    )
    if report is not None:
        payload["report"] = report
    emit(conn, "task_status_changed", payload)
    return row


def status_changed_payload(
    row: Any,
    current: Status,
    target: Status,
    *,
    note: str | None,
    reply_number: str | None,
    actor: str,
    at: datetime,
    task: dict[str, Any],
) -> dict[str, Any]:
    """The routing.task_status_changed payload of one move of `row` (its id, directive, unit and role)."""
    return {
        "task_id": row.id,
        "directive_id": row.directive_id,
        "unit": row.unit,
        "role": row.role,
        "from_status": current.value,
        "status": target.value,
        "note": note,
        "reply_number": reply_number,
        "actor": actor,
        "changed_at": at.isoformat(),
        "task": task,
    }


def _changed(conn: Connection, task: Any, values: Mapping[str, Any]) -> Any:
    """The task row after an UPDATE of `values`: merged in memory when `task` came from task_query()."""
    current = task._asdict() if hasattr(task, "_asdict") else dict(vars(task))
    if "d_number" not in current:
        return load_task(conn, task.id)
    return SimpleNamespace(**(current | dict(values)))


@dataclass(frozen=True)
class TaskUpdate:
    """An UPDATE of tasks built once with bind parameters, answering the changed rows as task_query()
    reads them.

    One statement on PostgreSQL (UPDATE … FROM directives … RETURNING, the directive's columns
    included); elsewhere the UPDATE answers the ids and a SELECT reads the rows (SQLite's RETURNING
    cannot name another table). Built once, the statements skip the construction and cache-key work a
    fresh statement costs on every call.
    """

    joined: sa.Update
    plain: sa.Update

    @classmethod
    def of(cls, update: sa.Update) -> TaskUpdate:
        return cls(
            update.where(t.tasks.c.directive_id == t.directives.c.id).returning(*TASK_COLUMNS),
            update.returning(t.tasks.c.id),
        )

    def run(self, conn: Connection, params: dict[str, Any]) -> list[Any]:
        if conn.dialect.name == "postgresql":
            return list(conn.execute(self.joined, params).all())
        ids = list(conn.execute(self.plain, params).scalars())
        if not ids:
            return []
        return list(conn.execute(_TASKS_BY_ID, {"ids": ids}).all())


_TASKS_BY_ID = task_query().where(t.tasks.c.id.in_(sa.bindparam("ids", expanding=True)))


def assigned_among(*, of_unit: bool) -> list[sa.ColumnElement[bool]]:
    where = [t.tasks.c.id.in_(sa.bindparam("ids", expanding=True)), t.tasks.c.status == Status.ASSIGNED.value]
    if of_unit:
        where.append(t.tasks.c.unit == sa.bindparam("p_unit"))
    return where


def visible_task(conn: Connection, task_id: str, unit: str | None) -> Any:
    """Another unit's task answers exactly like a missing one."""
    row = load_task(conn, task_id)
    if row is None or (unit is not None and row.unit != unit):
        raise TaskNotFound(f"no task {task_id}")
    return row


def task_history(conn: Connection, task_id: str) -> list[dict[str, Any]]:
    rows = conn.execute(
        sa.select(t.task_history).where(t.task_history.c.task_id == task_id).order_by(t.task_history.c.id)
    ).all()
    return [history_json(h) for h in rows]
