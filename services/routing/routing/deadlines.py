"""Deadlines and leases over time: expired leases offered again, overdue tasks flagged and reminded."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from routing.adapters import tables as t
from routing.adapters.repository import task_json, task_query
from routing.domain.tasks import OPEN, Status
from routing.ledger import emit, offer, utcnow
from routing.messages import TASK_REMINDER


def expire_leases(*, engine: Engine, now: datetime | None = None) -> int:
    """Offers again every task whose REST lease ended without an ack."""
    now = now or utcnow()
    count = 0
    with engine.begin() as conn:
        rows = conn.execute(
            sa.select(t.tasks.c.id).where(
                t.tasks.c.status == Status.ASSIGNED.value,
                t.tasks.c.lease_expires_at.is_not(None),
                t.tasks.c.lease_expires_at < now,
            )
        ).scalars()
        for task_id in list(rows):
            done = conn.execute(
                sa.update(t.tasks)
                .where(t.tasks.c.id == task_id, t.tasks.c.lease_expires_at < now)
                .values(lease_expires_at=None, updated_at=now)
            )
            if done.rowcount == 1:
                offer(conn, task_id)
                count += 1
    return count


def scan_overdue(*, engine: Engine, now: datetime | None = None) -> int:
    """Marks open tasks past their due time overdue, once: one event and one reminder on the unit's queue."""
    now = now or utcnow()
    since = now.isoformat()

    def overdue_extra(task: dict[str, Any]) -> dict[str, Any]:
        return reminder_fields(task, since)

    count = 0
    with engine.begin() as conn:
        ids = conn.execute(
            sa.select(t.tasks.c.id).where(
                t.tasks.c.status.in_([s.value for s in OPEN]),
                t.tasks.c.overdue_at.is_(None),
                t.tasks.c.due_at.is_not(None),
                t.tasks.c.due_at < now,
            )
        ).scalars()
        for task_id in list(ids):
            done = conn.execute(
                sa.update(t.tasks)
                .where(t.tasks.c.id == task_id, t.tasks.c.overdue_at.is_(None))
                .values(overdue_at=now)
            )
            if done.rowcount != 1:
                continue
            payload = offer(conn, task_id, event_type=TASK_REMINDER, extra=overdue_extra)
            emit(conn, "task_overdue", payload)
            count += 1
    return count


def reminder_fields(task: dict[str, Any], overdue_since: str) -> dict[str, Any]:
    """What a routing.task_reminder adds to the task document: the task id under its own name, since when
    the task is overdue, and one line a person can read as it is (Vietnamese, the due date as dd/mm/yyyy)."""
    due = task.get("due_date")
    due_text = f"{due[8:10]}/{due[5:7]}/{due[0:4]}" if isinstance(due, str) and len(due) >= 10 else "?"
    number = task.get("directive_number")
    about = f" (văn bản số {number})" if number else ""
    return {
        "task_id": task["id"],
        "overdue_since": overdue_since,
        "message": f"Quá hạn xử lý từ {due_text}: {task['title']}{about}",
    }


def overdue_by_unit(*, engine: Engine, now: datetime | None = None) -> dict[str, int]:
    """How many open tasks are past their due time, per unit (units with none are absent)."""
    now = now or utcnow()
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(t.tasks.c.unit, sa.func.count())
            .where(t.tasks.c.status.in_([s.value for s in OPEN]), t.tasks.c.due_at < now)
            .group_by(t.tasks.c.unit)
        ).all()
    return {unit: int(count) for unit, count in rows}


def list_overdue(*, engine: Engine, now: datetime | None = None) -> list[dict[str, Any]]:
    now = now or utcnow()
    with engine.connect() as conn:
        rows = conn.execute(
            task_query()
            .where(t.tasks.c.status.in_([s.value for s in OPEN]), t.tasks.c.due_at < now)
            .order_by(t.tasks.c.unit, t.tasks.c.due_at)
        ).all()
    by_unit: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_unit.setdefault(row.unit, []).append(task_json(row, now=now))
    return [{"unit": unit, "tasks": items, "count": len(items)} for unit, items in by_unit.items()]


# ------------------------------------------------------------------------------------------- bootstrap
