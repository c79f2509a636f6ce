"""Routing a directive into tasks: the registration event through the rules, and a clerk's assignments."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from types import SimpleNamespace
from typing import Any

import sqlalchemy as sa
from shared.envelope import Envelope
from shared.naming import TASKS_EXCHANGE
from shared.outbox import OutboxItem, outbox_row
from sqlalchemy.engine import Connection, Engine

from routing.adapters import tables as t
from routing.adapters.reference import ReferenceCache
from routing.adapters.repository import admit_directive, all_units, insert_tasks, task_json
from routing.domain.calendar import WorkingCalendar, end_of_day, local_date
from routing.domain.errors import DirectiveNotFound, InvalidAssignment
from routing.domain.rules import PlannedTask, RuleSet, derive_tasks
from routing.domain.tasks import Role, Status
from routing.domain.units import Unit
from routing.ledger import (
    CONSUMER,
    EVENTS,
    SERVICE,
    add_history,
    emit,
    load_task,
    move,
    offer,
    refresh_directive_status,
    utcnow,
)
from routing.messages import TASK_OFFERED, TASKS_ASSIGNED
from routing.progress import directive_progress
from routing.rules import ActiveRules, active_rules, facts_from_metadata


def _task_row(
    directive_id: str, planned: PlannedTask, *, rule_version: int | None, now: datetime
) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "directive_id": directive_id,
        "unit": planned.unit,
        "role": planned.role.value,
        "title": planned.title,
        "instructions": planned.instructions,
        "due_date": planned.due_date,
        "due_at": end_of_day(planned.due_date).astimezone(UTC) if planned.due_date else None,
        "status": Status.ASSIGNED.value,
        "rule_id": planned.rule_id,
        "rule_version": rule_version if planned.rule_id else None,
        "lease_expires_at": None,
        "lease_count": 0,
        "overdue_at": None,
        "reply_number": None,
        "created_at": now,
        "updated_at": now,
    }


def _directive_view(directive: Any) -> dict[str, Any]:
    """The directive columns task_query() joins onto a task, taken from a directives row or its values."""
    get = directive.get if isinstance(directive, Mapping) else lambda key: getattr(directive, key)
    return {
        "d_number": get("number"),
        "d_subject": get("subject"),
        "d_issuer": get("issuer"),
        "d_urgency": get("urgency"),
        "d_arrival_number": get("arrival_number"),
        "d_arrival_date": get("arrival_date"),
        "d_attachments": get("attachments"),
    }


def create_tasks(
    conn: Connection,
    directive: Any,
    planned: list[PlannedTask],
    *,
    rule_version: int | None,
    actor: str,
    now: datetime,
    new_directive: bool = False,
) -> list[str]:
    """Inserts the tasks, their first history entries and their offer/assigned messages, set-based.

    With `new_directive`, `directive` is a new directives row (a mapping) written in the same statement.
    """
    directive_id = directive["id"] if isinstance(directive, Mapping) else directive.id
    rows = [_task_row(directive_id, p, rule_version=rule_version, now=now) for p in planned]
    history = [
        {
            "task_id": row["id"],
            "at": now,
            "from_status": None,
            "to_status": Status.ASSIGNED.value,
            "actor": actor,
            "note": f"rule {p.rule_id}" if p.rule_id else None,
            "reply_number": None,
            "report": None,
        }
        for row, p in zip(rows, planned, strict=True)
    ]
    joined = _directive_view(directive)
    # Each payload is built from what was just inserted: the same document a reload would give.
    documents = [task_json(SimpleNamespace(**row, **joined)) for row in rows]
    items = [
        OutboxItem(Envelope.new(TASK_OFFERED, doc, producer=SERVICE), TASKS_EXCHANGE, doc["unit"])
        for doc in documents
    ]
    if documents:
        # The archive's copy is one event for all the tasks made here, not one per task: a directive's
        # fan-out would otherwise double what the relay and the broker carry for it.
        items.append(
            OutboxItem(
                Envelope.new(
                    TASKS_ASSIGNED, {"directive_id": directive_id, "tasks": documents}, producer=SERVICE
                ),
                EVENTS,
                None,
            )
        )
    insert_tasks(
        conn,
        directive=directive if new_directive else None,
        tasks=rows,
        history=history,
        outbox=[outbox_row(item, now) for item in items],
    )
    return [row["id"] for row in rows]


def _create_task(
    conn: Connection,
    directive: Any,
    planned: PlannedTask,
    *,
    rule_version: int | None,
    actor: str,
    now: datetime,
) -> str:
    return create_tasks(conn, directive, [planned], rule_version=rule_version, actor=actor, now=now)[0]


def _arrival_date(payload: Mapping[str, Any]) -> date:
    raw = payload.get("arrival_date")
    if raw:
        return date.fromisoformat(str(raw)[:10])
    received = payload.get("received_at")
    if received:
        return local_date(datetime.fromisoformat(str(received)))
    return local_date(utcnow())


def load_reference(conn: Connection) -> tuple[ActiveRules | None, list[Unit]]:
    """What routing a directive needs besides the directive: the active rule set and every unit."""
    return active_rules(conn), all_units(conn)


Reference = ReferenceCache[tuple[ActiveRules | None, list[Unit]]]


def reference_cache() -> Reference:
    """One per worker process: the rules and units, read again only after a write to either."""
    return ReferenceCache(load_reference)


def route_directive(
    envelope: Envelope,
    *,
    engine: Engine,
    calendar: WorkingCalendar,
    reference: Reference | None = None,
) -> list[str]:
    """Handles intake.directive_registered: one task per unit with the strongest role; idempotent.

    `reference` (a worker's cache) spares reading every unit and the rule set for each directive."""
    payload = envelope.payload
    directive_id = str(payload["directive_id"])
    metadata = payload.get("metadata") or {}
    arrival = _arrival_date(payload)
    now = utcnow()
    with engine.begin() as conn:
        admission = admit_directive(conn, envelope.id, CONSUMER, directive_id)
        if not admission.claimed:
            return []
        if admission.known:
            return []  # the same directive under another message id: already routed
        current, units = (
            reference.get(conn, admission.revision) if reference is not None else load_reference(conn)
        )
        facts = facts_from_metadata(metadata, arrival)
        derivation = derive_tasks(current.ruleset if current else RuleSet(), facts, units, calendar)
        issuer = metadata.get("issuer") or {}
        directive = {
            "id": directive_id,
            "arrival_number": payload.get("arrival_number"),
            "arrival_date": arrival,
            # In UTC, like every stored time: SQLite keeps no offset and would read +07:00 back as UTC.
            "received_at": datetime.fromisoformat(payload["received_at"]).astimezone(UTC)
            if payload.get("received_at")
            else None,
            "number": facts.number,
            "subject": facts.subject,
            "issuer": {"name": issuer.get("name"), "code": issuer.get("code")}
            if isinstance(issuer, Mapping)
            else {"name": str(issuer)},
            "urgency": facts.urgency,
            "due_date": facts.due_date,
            "metadata": json.loads(json.dumps(dict(metadata), default=str)),
            "attachments": list(payload.get("attachments") or []),
            "status": "routed" if derivation.tasks else "needs_assignment",
            "matched_rules": list(derivation.matched_rules),
            "rule_version": current.version if current else None,
            "created_at": now,
            "updated_at": now,
            "revision": 1,
            "replaced_by": None,
        }
        # The directive, its tasks, their history and their messages: one statement on PostgreSQL.
        return create_tasks(
            conn,
            directive,
            list(derivation.tasks),
            rule_version=current.version if current else None,
            actor="rules",
            now=now,
            new_directive=True,
        )


@dataclass(frozen=True)
class Assignment:
    unit: str
    role: Role | None = None
    title: str | None = None
    instructions: str | None = None
    due_date: date | None = None
    cancel: bool = False


def assign(
    directive_id: str, assignments: list[Assignment], *, engine: Engine, actor: str, calendar: WorkingCalendar
) -> dict[str, Any]:
    """A clerk adds, changes or cancels assignments; answers the directive's progress."""
    now = utcnow()
    with engine.begin() as conn:
        directive = conn.execute(sa.select(t.directives).where(t.directives.c.id == directive_id)).first()
        if directive is None:
            raise DirectiveNotFound(f"no directive {directive_id}")
        for i, a in enumerate(assignments):
            unit = conn.execute(sa.select(t.units).where(t.units.c.code == a.unit)).first()
            if unit is None:
                raise InvalidAssignment(f"unknown unit {a.unit}", field=f"assignments.{i}.unit")
            task = conn.execute(
                sa.select(t.tasks).where(t.tasks.c.directive_id == directive_id, t.tasks.c.unit == a.unit)
            ).first()
            if a.cancel:
                if task is None:
                    raise InvalidAssignment(f"{a.unit} has no task to cancel", field=f"assignments.{i}.unit")
                move(conn, task, Status.CANCELLED, actor=actor, note="cancelled by a clerk")
                continue
            if not unit.active:
                raise InvalidAssignment(f"unit {a.unit} is inactive", field=f"assignments.{i}.unit")
            due = a.due_date
            if due is None and task is None:
                due = directive.due_date or calendar.add_working_days(directive.arrival_date, 10)
            if task is None:
                _create_task(
                    conn,
                    directive,
                    PlannedTask(
                        a.unit,
                        a.role or Role.CHU_TRI,
                        a.title or directive.subject,
                        a.instructions,
                        due,
                        None,
                    ),
                    rule_version=None,
                    actor=actor,
                    now=now,
                )
                continue
            changes: dict[str, Any] = {"updated_at": now}
            if a.role is not None:
                changes["role"] = a.role.value
            if a.title is not None:
                changes["title"] = a.title
            if a.instructions is not None:
                changes["instructions"] = a.instructions
            if due is not None:
                changes["due_date"] = due
                changes["due_at"] = end_of_day(due).astimezone(UTC)
                changes["overdue_at"] = None
            status = Status(task.status)
            if status == Status.COMPLETED:
                raise InvalidAssignment(f"the task of {a.unit} is completed", field=f"assignments.{i}.unit")
            conn.execute(sa.update(t.tasks).where(t.tasks.c.id == task.id).values(**changes))
            if status in (Status.REJECTED, Status.CANCELLED):
                # Handed to the unit again: back to assigned and onto its queue.
                conn.execute(
                    sa.update(t.tasks)
                    .where(t.tasks.c.id == task.id)
                    .values(lease_expires_at=None, reply_number=None)
                )
                move(conn, task, Status.ASSIGNED, actor=actor, note="reassigned by a clerk")
                offer(conn, task.id)
            else:
                add_history(
                    conn, task.id, task.status, task.status, actor, note="assignment changed by a clerk"
                )
                emit(conn, "task_assigned", task_json(load_task(conn, task.id)))
        refresh_directive_status(conn, directive_id)
    return directive_progress(directive_id, engine=engine)
