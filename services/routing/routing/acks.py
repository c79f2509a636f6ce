"""Acknowledgements: a unit records receipt of one task or a batch of its tasks, set-based and idempotent."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from types import SimpleNamespace
from typing import Any

import sqlalchemy as sa
from shared.envelope import Envelope
from shared.outbox import add_to_outbox
from sqlalchemy.engine import Connection, Engine

from routing.adapters import tables as t
from routing.adapters.repository import task_json
from routing.domain.errors import InvalidTransition, TaskNotFound, UnitNotFound
from routing.domain.tasks import Role, Status, check_move
from routing.ledger import (
    EVENTS,
    SERVICE,
    TaskUpdate,
    assigned_among,
    load_task,
    refresh_directive_statuses,
    status_changed_payload,
    task_history,
    utcnow,
)
from routing.messages import TASKS_ACKNOWLEDGED


def _ack_update(*, of_unit: bool) -> TaskUpdate:
    """assigned → received, or straight on to completed for a de_biet task."""
    on_receipt = sa.case(
        (t.tasks.c.role == Role.DE_BIET.value, Status.COMPLETED.value), else_=Status.RECEIVED.value
    )
    return TaskUpdate.of(
        sa.update(t.tasks)
        .where(*assigned_among(of_unit=of_unit))
        .values(status=on_receipt, lease_expires_at=None, updated_at=sa.bindparam("p_now"))
    )


_ACK_OF_UNIT = _ack_update(of_unit=True)
_ACK_ANY_UNIT = _ack_update(of_unit=False)


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
                    status_changed_payload(
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
        refresh_directive_statuses(
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
        row = load_task(conn, task_id)
        history = task_history(conn, task_id)
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
