"""Use cases of the routing service: typed functions with explicit keyword dependencies."""

from __future__ import annotations

import hashlib
import json
import logging
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from types import SimpleNamespace
from typing import Any

import sqlalchemy as sa
from shared.envelope import Envelope
from shared.inbox import claim
from shared.naming import TASKS_EXCHANGE, events_exchange
from shared.objectstore import ObjectStore
from shared.outbox import OutboxItem, add_to_outbox, outbox_row
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from routing.adapters import tables as t
from routing.adapters.reference import ReferenceCache
from routing.adapters.repository import (
    TASK_COLUMNS,
    all_units,
    aware,
    history_json,
    insert_tasks,
    task_json,
    task_query,
    unit_from_row,
    unit_json,
)
from routing.adapters.unit_queue import QueueMessage, QueueReader, UnitQueues
from routing.domain.calendar import WorkingCalendar, end_of_day, local_date
from routing.domain.errors import (
    AttachmentNotFound,
    DirectiveNotFound,
    InvalidAssignment,
    InvalidTransition,
    RuleVersionNotFound,
    TaskNotFound,
    UnitNotFound,
)
from routing.domain.rules import DirectiveFacts, PlannedTask, RuleSet, derive_tasks, parse_ruleset
from routing.domain.tasks import OPEN, ROLE_RANK, Role, Status, check_move
from routing.domain.units import Unit
from routing.messages import TASK_OFFERED, TASKS_ACKNOWLEDGED, TASKS_ASSIGNED

log = logging.getLogger(__name__)

SERVICE = "routing"
EVENTS = events_exchange(SERVICE)
CONSUMER = "routing"


def utcnow() -> datetime:
    return datetime.now(UTC)


class ChecksumFailed(Exception):
    """A blob read back from the object store does not have the SHA-256 recorded for it."""


# ------------------------------------------------------------------------------------------------ units


@dataclass
class ImportResult:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)


def _upsert_unit(conn: Connection, unit: Unit, now: datetime) -> str:
    row = conn.execute(sa.select(t.units).where(t.units.c.code == unit.code)).first()
    values = {
        "name": unit.name,
        "groups": list(unit.groups),
        "tags": list(unit.tags),
        "active": unit.active,
        "updated_at": now,
    }
    if row is None:
        conn.execute(sa.insert(t.units).values(code=unit.code, created_at=now, **values))
        return "created"
    if unit_from_row(row).same_definition(unit):
        return "unchanged"
    conn.execute(sa.update(t.units).where(t.units.c.code == unit.code).values(**values))
    return "updated"


def ensure_unit_queues(*, engine: Engine, queues: UnitQueues, codes: Iterable[str] | None = None) -> int:
    """Declares the task queue of every unit not yet declared (or of `codes`); returns how many."""
    with engine.connect() as conn:
        query = sa.select(t.units.c.code)
        if codes is None:
            query = query.where(t.units.c.queue_declared_at.is_(None))
        else:
            query = query.where(t.units.c.code.in_(list(codes)))
        pending = list(conn.execute(query).scalars())
    if not pending:
        return 0
    queues.declare(pending)
    with engine.begin() as conn:
        conn.execute(sa.update(t.units).where(t.units.c.code.in_(pending)).values(queue_declared_at=utcnow()))
    return len(pending)


def _declare_best_effort(engine: Engine, queues: UnitQueues | None, codes: list[str]) -> None:
    if queues is None or not codes:
        return
    try:
        ensure_unit_queues(engine=engine, queues=queues, codes=codes)
    except Exception:
        log.warning("could not declare unit queues now; the worker will", exc_info=True)


def import_units(units: list[Unit], *, engine: Engine, queues: UnitQueues | None) -> ImportResult:
    """Upserts units idempotently and declares the queues of new units."""
    result = ImportResult()
    now = utcnow()
    with engine.begin() as conn:
        for unit in units:
            getattr(result, _upsert_unit(conn, unit, now)).append(unit.code)
    _declare_best_effort(engine, queues, result.created + result.updated)
    return result


def put_unit(unit: Unit, *, engine: Engine, queues: UnitQueues | None) -> tuple[dict[str, Any], bool]:
    with engine.begin() as conn:
        outcome = _upsert_unit(conn, unit, utcnow())
    _declare_best_effort(engine, queues, [unit.code])
    return get_unit(unit.code, engine=engine), outcome == "created"


def get_unit(code: str, *, engine: Engine) -> dict[str, Any]:
    with engine.connect() as conn:
        row = conn.execute(sa.select(t.units).where(t.units.c.code == code)).first()
    if row is None:
        raise UnitNotFound(f"no unit {code}")
    return unit_json(row)


def list_units(
    *, engine: Engine, group: str | None, active: bool | None, page: int, per_page: int
) -> tuple[list[dict[str, Any]], int]:
    with engine.connect() as conn:
        rows = list(conn.execute(sa.select(t.units).order_by(t.units.c.code)))
    if group is not None:
        rows = [r for r in rows if group in (r.groups or ())]
    if active is not None:
        rows = [r for r in rows if bool(r.active) == active]
    start = (page - 1) * per_page
    return [unit_json(r) for r in rows[start : start + per_page]], len(rows)


def deactivate_unit(code: str, *, engine: Engine) -> dict[str, Any]:
    """Deactivation keeps the unit's tasks and history; it only stops new assignments."""
    with engine.begin() as conn:
        done = conn.execute(
            sa.update(t.units).where(t.units.c.code == code).values(active=False, updated_at=utcnow())
        )
        if done.rowcount == 0:
            raise UnitNotFound(f"no unit {code}")
    return get_unit(code, engine=engine)


# ------------------------------------------------------------------------------------------------ rules


@dataclass(frozen=True)
class ActiveRules:
    version: int
    ruleset: RuleSet
    document: dict[str, Any]
    created_at: datetime | None
    created_by: str


def _known(units: list[Unit]) -> tuple[set[str], set[str]]:
    active = [u for u in units if u.active]
    return {u.code for u in active}, {g for u in active for g in u.groups}


def validate_rules(doc: object, *, engine: Engine) -> RuleSet:
    with engine.connect() as conn:
        codes, groups = _known(all_units(conn))
    return parse_ruleset(doc, units=codes, groups=groups)


def put_rules(doc: object, *, source: str, engine: Engine, actor: str) -> dict[str, Any]:
    """Validates the whole set against the known units and stores it as a new version."""
    validate_rules(doc, engine=engine)
    digest = hashlib.sha256(
        json.dumps(doc, sort_keys=True, ensure_ascii=False, default=str).encode()
    ).hexdigest()
    for _ in range(3):
        try:
            with engine.begin() as conn:
                latest = conn.execute(
                    sa.select(t.rule_versions).order_by(t.rule_versions.c.version.desc()).limit(1)
                ).first()
                if latest is not None and latest.sha256 == digest:
                    return _version_json(latest, created=False)
                version = 1 if latest is None else latest.version + 1
                conn.execute(
                    sa.insert(t.rule_versions).values(
                        version=version,
                        document=json.loads(json.dumps(doc, default=str)),
                        source=source,
                        sha256=digest,
                        created_at=utcnow(),
                        created_by=actor,
                    )
                )
                row = conn.execute(
                    sa.select(t.rule_versions).where(t.rule_versions.c.version == version)
                ).one()
                return _version_json(row, created=True)
        except IntegrityError:
            continue  # another writer took this version number; read again
    raise RuntimeError("could not store the rule set after concurrent updates")


def _version_json(row: Any, *, created: bool) -> dict[str, Any]:
    doc = row.document or {}
    return {
        "version": row.version,
        "sha256": row.sha256,
        "created_at": aware(row.created_at).isoformat() if row.created_at else None,  # type: ignore[union-attr]
        "created_by": row.created_by,
        "rules": [r.get("id") for r in doc.get("rules", []) if isinstance(r, Mapping)],
        "created": created,
    }


def active_rules(conn: Connection) -> ActiveRules | None:
    row = conn.execute(sa.select(t.rule_versions).order_by(t.rule_versions.c.version.desc()).limit(1)).first()
    if row is None:
        return None
    # Stored sets were valid when stored; units may have gone since, so references are not checked again.
    return ActiveRules(
        row.version, parse_ruleset(row.document), row.document, aware(row.created_at), row.created_by
    )


def get_rules(*, engine: Engine) -> dict[str, Any]:
    with engine.connect() as conn:
        current = active_rules(conn)
    if current is None:
        return {"version": None, "document": {"version": 1, "rules": []}}
    return {"version": current.version, "document": current.document, "created_by": current.created_by}


def list_rule_versions(*, engine: Engine, page: int, per_page: int) -> tuple[list[dict[str, Any]], int]:
    with engine.connect() as conn:
        total = conn.execute(sa.select(sa.func.count()).select_from(t.rule_versions)).scalar_one()
        rows = conn.execute(
            sa.select(t.rule_versions)
            .order_by(t.rule_versions.c.version.desc())
            .offset((page - 1) * per_page)
            .limit(per_page)
        ).all()
    return [_version_json(r, created=False) | {"created": None} for r in rows], int(total)


def get_rule_version(version: int, *, engine: Engine) -> dict[str, Any]:
    with engine.connect() as conn:
        row = conn.execute(sa.select(t.rule_versions).where(t.rule_versions.c.version == version)).first()
    if row is None:
        raise RuleVersionNotFound(f"no rule set version {version}")
    return _version_json(row, created=False) | {
        "created": None,
        "document": row.document,
        "source": row.source,
    }


def facts_from_metadata(metadata: Mapping[str, Any], arrival_date: date) -> DirectiveFacts:
    issuer = metadata.get("issuer") or {}
    if isinstance(issuer, str):
        issuer = {"name": issuer}
    due = metadata.get("due_date")
    number = metadata.get("number") or ""
    if not number and metadata.get("code_number"):
        number = f"{metadata.get('code_number')}/{metadata.get('code_notation') or ''}"
    return DirectiveFacts(
        arrival_date=arrival_date,
        issuer_name=str(issuer.get("name") or ""),
        issuer_code=str(issuer.get("code") or ""),
        document_type=str(metadata.get("document_type") or ""),
        number=str(number),
        notation=str(metadata.get("code_notation") or ""),
        subject=str(metadata.get("subject") or ""),
        urgency=str(metadata.get("urgency") or "thuong"),
        due_date=due if isinstance(due, date) else (date.fromisoformat(due) if due else None),
    )


def evaluate(
    metadata: Mapping[str, Any], arrival_date: date, *, engine: Engine, calendar: WorkingCalendar
) -> dict[str, Any]:
    """The tasks the active rules would create for a directive, without creating them."""
    with engine.connect() as conn:
        current = active_rules(conn)
        units = all_units(conn)
    facts = facts_from_metadata(metadata, arrival_date)
    ruleset = current.ruleset if current else RuleSet()
    derivation = derive_tasks(ruleset, facts, units, calendar)
    return {
        "rule_version": current.version if current else None,
        "matched_rules": list(derivation.matched_rules),
        "tasks": [_planned_json(p) for p in derivation.tasks],
    }


def _planned_json(p: PlannedTask) -> dict[str, Any]:
    return {
        "unit": p.unit,
        "role": p.role.value,
        "title": p.title,
        "instructions": p.instructions,
        "due_date": p.due_date.isoformat() if p.due_date else None,
        "due_at": end_of_day(p.due_date).isoformat() if p.due_date else None,
        "rule_id": p.rule_id,
    }


# ------------------------------------------------------------------------------------------- directives


def _history(conn: Connection, task_id: str, frm: str | None, to: str, actor: str, **extra: Any) -> None:
    conn.execute(
        sa.insert(t.task_history).values(
            task_id=task_id, at=utcnow(), from_status=frm, to_status=to, actor=actor, **extra
        )
    )


def _load_task(conn: Connection, task_id: str) -> Any:
    return conn.execute(task_query().where(t.tasks.c.id == task_id)).first()


def _offer(conn: Connection, task_id: str, *, event_type: str = TASK_OFFERED) -> dict[str, Any]:
    """Puts the task on its unit's queue through the outbox (exchange routing.tasks, key = unit code)."""
    row = _load_task(conn, task_id)
    payload = task_json(row)
    add_to_outbox(
        conn,
        t.outbox,
        Envelope.new(event_type, payload, producer=SERVICE),
        exchange=TASKS_EXCHANGE,
        routing_key=row.unit,
    )
    return payload


def _emit(conn: Connection, event: str, payload: dict[str, Any]) -> None:
    add_to_outbox(
        conn, t.outbox, Envelope.new(f"routing.{event}", payload, producer=SERVICE), exchange=EVENTS
    )


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


def _create_tasks(
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
    return _create_tasks(conn, directive, [planned], rule_version=rule_version, actor=actor, now=now)[0]


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
        if not claim(conn, t.inbox, envelope.id, CONSUMER):
            return []
        if conn.execute(sa.select(t.directives.c.id).where(t.directives.c.id == directive_id)).first():
            return []  # the same directive under another message id: already routed
        current, units = reference.get(conn) if reference is not None else load_reference(conn)
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
        }
        # The directive, its tasks, their history and their messages: one statement on PostgreSQL.
        return _create_tasks(
            conn,
            directive,
            list(derivation.tasks),
            rule_version=current.version if current else None,
            actor="rules",
            now=now,
            new_directive=True,
        )


def _rollup(statuses: list[str]) -> str:
    """A directive's status from its tasks' statuses."""
    live = [s for s in statuses if s != Status.CANCELLED.value]
    if not live or Status.REJECTED.value in live:
        return "needs_assignment"
    if all(s == Status.COMPLETED.value for s in live):
        return "completed"
    return "routed"


def _refresh_directive_statuses(conn: Connection, directive_ids: Iterable[str]) -> dict[str, str]:
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
        if stored.get(directive_id) != status:
            changed.setdefault(status, []).append(directive_id)
    for status, ids in changed.items():
        conn.execute(
            sa.update(t.directives)
            .where(t.directives.c.id.in_(ids))
            .values(status=status, updated_at=utcnow())
        )
    return result


def _refresh_directive_status(conn: Connection, directive_id: str) -> str:
    return _refresh_directive_statuses(conn, [directive_id])[directive_id]


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
                _move(conn, task, Status.CANCELLED, actor=actor, note="cancelled by a clerk")
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
                _move(conn, task, Status.ASSIGNED, actor=actor, note="reassigned by a clerk")
                _offer(conn, task.id)
            else:
                _history(conn, task.id, task.status, task.status, actor, note="assignment changed by a clerk")
                _emit(conn, "task_assigned", task_json(_load_task(conn, task.id)))
        _refresh_directive_status(conn, directive_id)
    return directive_progress(directive_id, engine=engine)


def _move(
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
    _history(
        conn, task.id, current.value, target.value, actor, note=note, reply_number=reply_number, report=report
    )
    row = _changed(conn, task, values)
    payload = _status_changed_payload(
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
    _emit(conn, "task_status_changed", payload)
    return row


def _status_changed_payload(
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
        return _load_task(conn, task.id)
    return SimpleNamespace(**(current | dict(values)))


@dataclass(frozen=True)
class _TaskUpdate:
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
    def of(cls, update: sa.Update) -> _TaskUpdate:
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


def _assigned_among(*, of_unit: bool) -> list[sa.ColumnElement[bool]]:
    where = [t.tasks.c.id.in_(sa.bindparam("ids", expanding=True)), t.tasks.c.status == Status.ASSIGNED.value]
    if of_unit:
        where.append(t.tasks.c.unit == sa.bindparam("p_unit"))
    return where


def _ack_update(*, of_unit: bool) -> _TaskUpdate:
    """assigned → received, or straight on to completed for a de_biet task."""
    on_receipt = sa.case(
        (t.tasks.c.role == Role.DE_BIET.value, Status.COMPLETED.value), else_=Status.RECEIVED.value
    )
    return _TaskUpdate.of(
        sa.update(t.tasks)
        .where(*_assigned_among(of_unit=of_unit))
        .values(status=on_receipt, lease_expires_at=None, updated_at=sa.bindparam("p_now"))
    )


_ACK_OF_UNIT = _ack_update(of_unit=True)
_ACK_ANY_UNIT = _ack_update(of_unit=False)
_LEASE = _TaskUpdate.of(
    sa.update(t.tasks)
    .where(
        *_assigned_among(of_unit=True),
        sa.or_(t.tasks.c.lease_expires_at.is_(None), t.tasks.c.lease_expires_at < sa.bindparam("p_now")),
    )
    .values(
        lease_expires_at=sa.bindparam("p_until"),
        lease_count=t.tasks.c.lease_count + 1,
        updated_at=sa.bindparam("p_now"),
    )
)


# ------------------------------------------------------------------------------------------------ tasks


def _visible_task(conn: Connection, task_id: str, unit: str | None) -> Any:
    """Another unit's task answers exactly like a missing one."""
    row = _load_task(conn, task_id)
    if row is None or (unit is not None and row.unit != unit):
        raise TaskNotFound(f"no task {task_id}")
    return row


def _task_history(conn: Connection, task_id: str) -> list[dict[str, Any]]:
    rows = conn.execute(
        sa.select(t.task_history).where(t.task_history.c.task_id == task_id).order_by(t.task_history.c.id)
    ).all()
    return [history_json(h) for h in rows]


def get_task(task_id: str, *, engine: Engine, unit: str | None) -> dict[str, Any]:
    with engine.connect() as conn:
        row = _visible_task(conn, task_id, unit)
        history = _task_history(conn, task_id)
    return task_json(row) | {"history": history}


def _ledger_statements(*, by_status: bool) -> tuple[sa.Select[Any], sa.Select[Any]]:
    """A unit's task count and one page of its ledger, in creation order (ix_tasks_unit_created).

    Built once with bind parameters: at 50 rows a page, building and cache-keying a fresh statement on every
    request cost as much as fetching the rows.
    """
    where = [t.tasks.c.unit == sa.bindparam("p_unit")]
    if by_status:
        where.append(t.tasks.c.status == sa.bindparam("p_status"))
    count = sa.select(sa.func.count()).select_from(t.tasks).where(*where)
    page = (
        task_query()
        .where(*where)
        .order_by(t.tasks.c.created_at, t.tasks.c.id)
        .offset(sa.bindparam("p_offset"))
        .limit(sa.bindparam("p_limit"))
    )
    return count, page


_LEDGER = _ledger_statements(by_status=False)
_LEDGER_BY_STATUS = _ledger_statements(by_status=True)
_UNIT_EXISTS = sa.select(t.units.c.code).where(t.units.c.code == sa.bindparam("p_unit"))


def list_unit_tasks(
    code: str, *, engine: Engine, status: str | None, page: int, per_page: int
) -> tuple[list[dict[str, Any]], int]:
    count, select_page = _LEDGER_BY_STATUS if status else _LEDGER
    params: dict[str, Any] = {"p_unit": code, "p_offset": (page - 1) * per_page, "p_limit": per_page}
    if status:
        params["p_status"] = status
    with engine.connect() as conn:
        if conn.execute(_UNIT_EXISTS, params).first() is None:
            raise UnitNotFound(f"no unit {code}")
        total = conn.execute(count, params).scalar_one()
        rows = conn.execute(select_page, params).all()
    now = utcnow()
    return [task_json(r, now=now) for r in rows], int(total)


ACK_BATCH_MAX = 100


class AckResult(StrEnum):
    ACKED = "acked"  # assigned → received now (de_biet: → received → completed)
    UNCHANGED = "unchanged"  # already received or further on: a repeated ack, nothing to do
    CONFLICT = "conflict"  # rejected or cancelled: the single ack answers 409
    NOT_FOUND = "not_found"  # unknown, or another unit's task (both answer the same)


@dataclass(frozen=True)
class AckOutcome:
    id: str
    result: AckResult
    status: str | None
    detail: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "result": self.result.value, "status": self.status, "detail": self.detail}


def _ack_many(conn: Connection, task_ids: list[str], *, unit: str | None, actor: str) -> list[AckOutcome]:
    """Records receipt of tasks set-based, in the caller's transaction; one outcome per distinct id.

    One UPDATE moves every assigned task among `task_ids` (of `unit`, when given) to received, or
    straight on to completed for a de_biet task, as the single ack always did; then one multi-row insert
    for the history and one routing.tasks_acknowledged event carrying every step. The guard on the status
    makes a repeated or concurrent ack move a task once.
    """
    ids = list(dict.fromkeys(task_ids))
    now = utcnow()
    if unit is None:
        moved = _ACK_ANY_UNIT.run(conn, {"ids": sorted(ids), "p_now": now})
    else:
        moved = _ACK_OF_UNIT.run(conn, {"ids": sorted(ids), "p_unit": unit, "p_now": now})
    outcomes: dict[str, AckOutcome] = {}
    if moved:
        history: list[dict[str, Any]] = []
        changes: list[dict[str, Any]] = []
        steps = [(Status.ASSIGNED, Status.RECEIVED, None)]
        for row in moved:
            final = SimpleNamespace(**row._asdict())
            path = steps + (
                [(Status.RECEIVED, Status.COMPLETED, "for information")]
                if row.role == Role.DE_BIET.value
                else []
            )
            for current, target, note in path:
                check_move(current, target, note=note)
                view = SimpleNamespace(**(vars(final) | {"status": target.value}))
                history.append(
                    {
                        "task_id": row.id,
                        "at": now,
                        "from_status": current.value,
                        "to_status": target.value,
                        "actor": actor,
                        "note": note,
                    }
                )
                changes.append(
                    _status_changed_payload(
                        row,
                        current,
                        target,
                        note=note,
                        reply_number=None,
                        actor=actor,
                        at=now,
                        task=task_json(view, now=now),
                    )
                )
            outcomes[row.id] = AckOutcome(row.id, AckResult.ACKED, row.status)
        if all(h["note"] is None for h in history):
            # Only the columns with values (reply number and report stay NULL): ten rows then bind 50
            # parameters, few enough for psycopg to cache the statement's conversion.
            for h in history:
                del h["note"]
        conn.execute(sa.insert(t.task_history), history)
        # The whole acknowledgement is one event, not one per step: a unit acking a batch of ten would
        # otherwise put ten to twenty messages through the relay and the broker.
        add_to_outbox(
            conn,
            t.outbox,
            Envelope.new(TASKS_ACKNOWLEDGED, {"changes": changes}, producer=SERVICE),
            exchange=EVENTS,
        )
        # assigned and received weigh the same in the roll-up: only a completed de_biet task can change
        # its directive's status.
        _refresh_directive_statuses(
            conn, {r.directive_id for r in moved if r.status == Status.COMPLETED.value}
        )
    rest = [task_id for task_id in ids if task_id not in outcomes]
    if rest:
        query = sa.select(t.tasks.c.id, t.tasks.c.status).where(t.tasks.c.id.in_(sorted(rest)))
        if unit is not None:
            query = query.where(t.tasks.c.unit == unit)
        for row in conn.execute(query):
            status = Status(row.status)
            if status in (Status.REJECTED, Status.CANCELLED):
                outcomes[row.id] = AckOutcome(
                    row.id, AckResult.CONFLICT, status.value, f"the task is {status.value}"
                )
            elif status == Status.ASSIGNED:
                # Handed back to the unit between the UPDATE and this read (a clerk's reassignment).
                outcomes[row.id] = AckOutcome(
                    row.id, AckResult.CONFLICT, status.value, "the task changed meanwhile; ack it again"
                )
            else:
                outcomes[row.id] = AckOutcome(row.id, AckResult.UNCHANGED, status.value)
    return [outcomes.get(task_id) or AckOutcome(task_id, AckResult.NOT_FOUND, None) for task_id in ids]


def ack_task(task_id: str, *, engine: Engine, unit: str | None, actor: str) -> dict[str, Any]:
    """The unit has the task: assigned → received; de_biet tasks complete on receipt. Idempotent."""
    with engine.begin() as conn:
        outcome = _ack_many(conn, [task_id], unit=unit, actor=actor)[0]
        if outcome.result == AckResult.NOT_FOUND:
            raise TaskNotFound(f"no task {task_id}")
        if outcome.result == AckResult.CONFLICT:
            raise InvalidTransition(outcome.detail or f"the task is {outcome.status}")
        # Answered from this transaction's view: what it wrote is what the unit reads back.
        row = _load_task(conn, task_id)
        history = _task_history(conn, task_id)
    return task_json(row) | {"history": history}


def ack_tasks(code: str, task_ids: list[str], *, engine: Engine, actor: str) -> list[AckOutcome]:
    """Receipt of up to ACK_BATCH_MAX tasks of unit `code` in one transaction; an outcome per distinct id.

    Tasks of other units are left alone and answer not_found, exactly like unknown ids; a rejected or
    cancelled task answers conflict without failing the rest.
    """
    if len(set(task_ids)) > ACK_BATCH_MAX:
        raise ValueError(f"at most {ACK_BATCH_MAX} ids per acknowledgement")
    with engine.begin() as conn:
        outcomes = _ack_many(conn, task_ids, unit=code, actor=actor)
        if any(o.result == AckResult.NOT_FOUND for o in outcomes) and (
            conn.execute(sa.select(t.units.c.code).where(t.units.c.code == code)).first() is None
        ):
            raise UnitNotFound(f"no unit {code}")
    return outcomes


@dataclass(frozen=True)
class ReportUpload:
    filename: str
    content_type: str
    data: bytes


def change_status(
    task_id: str,
    status: Status,
    *,
    note: str | None,
    reply_number: str | None,
    report: ReportUpload | None,
    engine: Engine,
    store: ObjectStore | None,
    bucket: str,
    unit: str | None,
    actor: str,
) -> dict[str, Any]:
    """A unit reports progress; a report file goes to the staging bucket before the change is recorded."""
    with engine.connect() as conn:
        row = _visible_task(conn, task_id, unit)
    check_move(Status(row.status), status, note=note)
    report_meta: dict[str, Any] | None = None
    if report is not None:
        if store is None:
            raise RuntimeError("no object store configured")
        digest = hashlib.sha256(report.data).hexdigest()
        key = f"tasks/{task_id}/{digest}"
        store.ensure_bucket(bucket)
        stored = store.put(
            bucket,
            key,
            report.data,
            size=len(report.data),
            content_type=report.content_type,
            sha256=digest,
            metadata={"task-id": task_id},
        )
        report_meta = {
            "bucket": bucket,
            "key": key,
            "sha256": digest,
            "size": stored.size,
            "filename": report.filename,
            "content_type": report.content_type,
        }
    with engine.begin() as conn:
        row = _visible_task(conn, task_id, unit)
        _move(conn, row, status, actor=actor, note=note, reply_number=reply_number, report=report_meta)
        _refresh_directive_status(conn, row.directive_id)
    return get_task(task_id, engine=engine, unit=unit)


def read_attachment(
    task_id: str, attachment_id: str, *, engine: Engine, store: ObjectStore, unit: str | None
) -> tuple[dict[str, Any], bytes]:
    with engine.connect() as conn:
        row = _visible_task(conn, task_id, unit)
    for att in row.d_attachments or []:
        if str(att.get("id")) == attachment_id:
            data = store.read(att["bucket"], att["key"])
            if att.get("sha256") and hashlib.sha256(data).hexdigest() != att["sha256"]:
                raise ChecksumFailed(f"attachment {attachment_id} does not match its SHA-256")
            return att, data
    raise AttachmentNotFound(f"no attachment {attachment_id} on task {task_id}")


def directive_progress(directive_id: str, *, engine: Engine, now: datetime | None = None) -> dict[str, Any]:
    now = now or utcnow()
    with engine.connect() as conn:
        directive = conn.execute(sa.select(t.directives).where(t.directives.c.id == directive_id)).first()
        if directive is None:
            raise DirectiveNotFound(f"no directive {directive_id}")
        rows = conn.execute(task_query().where(t.tasks.c.directive_id == directive_id)).all()
    tasks = sorted(
        (task_json(r, now=now) for r in rows), key=lambda x: (ROLE_RANK[Role(x["role"])], x["unit"])
    )
    counts: dict[str, int] = {}
    for task in tasks:
        counts[task["status"]] = counts.get(task["status"], 0) + 1
    lead = [x for x in tasks if x["role"] == Role.CHU_TRI.value and x["status"] != Status.CANCELLED.value]
    return {
        "directive_id": directive_id,
        "number": directive.number,
        "subject": directive.subject,
        "arrival_number": directive.arrival_number,
        "status": directive.status,
        "matched_rules": directive.matched_rules,
        "rule_version": directive.rule_version,
        "tasks": [
            {
                "task_id": x["id"],
                "unit": x["unit"],
                "role": x["role"],
                "status": x["status"],
                "due_date": x["due_date"],
                "due_at": x["due_at"],
                "overdue": x["overdue"],
            }
            for x in tasks
        ],
        "counts": counts,
        "overdue_units": sorted({x["unit"] for x in tasks if x["overdue"]}),
        "done": bool(lead) and all(x["status"] == Status.COMPLETED.value for x in lead),
    }


def list_directives(
    *, engine: Engine, status: str | None, page: int, per_page: int
) -> tuple[list[dict[str, Any]], int]:
    with engine.connect() as conn:
        where = [t.directives.c.status == status] if status else []
        total = conn.execute(sa.select(sa.func.count()).select_from(t.directives).where(*where)).scalar_one()
        rows = conn.execute(
            sa.select(t.directives)
            .where(*where)
            .order_by(t.directives.c.created_at)
            .offset((page - 1) * per_page)
            .limit(per_page)
        ).all()
    items = [
        {
            "id": r.id,
            "number": r.number,
            "subject": r.subject,
            "issuer": r.issuer,
            "urgency": r.urgency,
            "arrival_number": r.arrival_number,
            "arrival_date": r.arrival_date.isoformat(),
            "due_date": r.due_date.isoformat() if r.due_date else None,
            "status": r.status,
        }
        for r in rows
    ]
    return items, int(total)


# ------------------------------------------------------------------------------------------- polling


@dataclass
class PollResult:
    items: list[dict[str, Any]] = field(default_factory=list)
    reminders: list[dict[str, Any]] = field(default_factory=list)


def _lease_many(
    conn: Connection, task_ids: list[str], code: str, lease_seconds: int, now: datetime
) -> dict[str, dict[str, Any]]:
    """Leases the assigned, not yet leased tasks among `task_ids`; answers them by id.

    The guard in WHERE makes two concurrent polls of duplicate messages lease a task only once; ids are
    sorted so that overlapping batches lock rows in the same order.
    """
    until = now + timedelta(seconds=lease_seconds)
    rows = _LEASE.run(conn, {"ids": sorted(set(task_ids)), "p_unit": code, "p_now": now, "p_until": until})
    return {row.id: task_json(row, now=now) for row in rows}


def _reminded(conn: Connection, task_ids: list[str], code: str) -> dict[str, dict[str, Any]]:
    """The unit's open tasks among `task_ids`, by id (a reminder for anything else is dropped)."""
    if not task_ids:
        return {}
    rows = conn.execute(task_query().where(t.tasks.c.id.in_(sorted(set(task_ids))))).all()
    return {row.id: task_json(row) for row in rows if row.unit == code and row.status in OPEN}


def _settle(
    messages: list[QueueMessage],
    code: str,
    *,
    reader: QueueReader,
    engine: Engine,
    lease_seconds: int,
    result: PollResult,
) -> None:
    """Leases what a batch of messages offers in one transaction, then acks the batch.

    Only with the leases in the ledger does the broker forget the messages; if anything fails first, the
    reader gives its unacked messages back to the queue.
    """
    offers: list[tuple[QueueMessage, str]] = []
    reminders: list[tuple[QueueMessage, str]] = []
    for message in messages:
        try:
            envelope = Envelope.from_bytes(message.body)
            task_id = str(envelope.payload["id"])
        except Exception:  # noqa: BLE001 - a malformed message is dead-lettered, never offered
            log.warning("malformed message on %s dead-lettered", code)
            message.reject()
            continue
        (reminders if envelope.type == "routing.task_reminder" else offers).append((message, task_id))
    if not offers and not reminders:
        return
    with engine.begin() as conn:
        reminded = _reminded(conn, [task_id for _, task_id in reminders], code)
        leased = (
            _lease_many(conn, [task_id for _, task_id in offers], code, lease_seconds, utcnow())
            if offers
            else {}
        )
    reader.ack([message for message, _ in reminders] + [message for message, _ in offers])
    for _, task_id in reminders:
        if task_id in reminded:
            result.reminders.append(reminded.pop(task_id))
    for _, task_id in offers:
        if task_id in leased:
            # pop: a duplicate message in the same batch is acked but offers the task once.
            result.items.append(leased.pop(task_id))


def poll_tasks(
    code: str,
    *,
    engine: Engine,
    queues: UnitQueues,
    max_tasks: int,
    wait_seconds: float,
    lease_seconds: int,
    interval: float = 0.1,
    known_units: set[str] | None = None,
) -> PollResult:
    """Takes up to `max_tasks` offers from the unit's queue; each is leased in the DB before its ack.

    `known_units` remembers the codes found in the database (units are deactivated, never deleted), so a
    unit's polls after its first skip that query; the check must come before the reader, which declares
    the queue — unless the database records it as declared already (a queue deleted behind our back is
    noticed by the reader, which declares it again).
    """
    if known_units is None or code not in known_units:
        with engine.connect() as conn:
            unit = conn.execute(
                sa.select(t.units.c.code, t.units.c.queue_declared_at).where(t.units.c.code == code)
            ).first()
        if unit is None:
            raise UnitNotFound(f"no unit {code}")
        if unit.queue_declared_at is not None:
            queues.assume_declared(code)
        if known_units is not None:
            known_units.add(code)
    result = PollResult()
    deadline = time.monotonic() + wait_seconds
    with queues.reader(code) as reader:
        while True:
            wanted = max_tasks - len(result.items) - len(result.reminders)
            batch: list[QueueMessage] = reader.get_many(wanted)
            if batch:
                _settle(batch, code, reader=reader, engine=engine, lease_seconds=lease_seconds, result=result)
            taken = len(result.items) + len(result.reminders)
            if taken >= max_tasks:
                break
            if len(batch) < wanted:  # the queue is empty for now
                if taken or time.monotonic() >= deadline:
                    break
                time.sleep(min(interval, max(deadline - time.monotonic(), 0)))
    return result


# ---------------------------------------------------------------------------------------- schedulers


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
                _offer(conn, task_id)
                count += 1
    return count


def scan_overdue(*, engine: Engine, now: datetime | None = None) -> int:
    """Marks open tasks past their due time overdue, once: one event and one reminder on the unit's queue."""
    now = now or utcnow()
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
            payload = _offer(conn, task_id, event_type="routing.task_reminder")
            _emit(conn, "task_overdue", payload | {"overdue_since": now.isoformat()})
            count += 1
    return count


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


def unit_codes(*, engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(sa.select(t.units.c.code).order_by(t.units.c.code)).scalars())


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


def bootstrap(
    *,
    engine: Engine,
    units_doc: object | None,
    rules_doc: object | None,
    rules_source: str,
    queues: UnitQueues | None,
) -> None:
    """First start: load the units file (upsert) and, when no rule set exists yet, the rules file."""
    from routing.domain.units import parse_units_document

    if units_doc is not None:
        import_units(parse_units_document(units_doc), engine=engine, queues=queues)
    if rules_doc is not None:
        with engine.connect() as conn:
            exists = active_rules(conn) is not None
        if not exists:
            # A rules file naming unknown units stops the start-up with RuleSetInvalid, which names them.
            put_rules(rules_doc, source=rules_source, engine=engine, actor="bootstrap")
