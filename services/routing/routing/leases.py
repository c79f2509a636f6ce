"""Leases: a unit's poll takes offers from its queue and leases each task in the ledger before the ack."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from shared.envelope import Envelope
from sqlalchemy.engine import Connection, Engine

from routing.adapters import tables as t
from routing.adapters.repository import task_json, task_query
from routing.adapters.unit_queue import QueueMessage, QueueReader, UnitQueues
from routing.domain.errors import UnitNotFound
from routing.domain.tasks import OPEN
from routing.ledger import TaskUpdate, assigned_among, utcnow

log = logging.getLogger(__name__)

_LEASE = TaskUpdate.of(
    sa.update(t.tasks)
    .where(
        *assigned_among(of_unit=True),
        sa.or_(t.tasks.c.lease_expires_at.is_(None), t.tasks.c.lease_expires_at < sa.bindparam("p_now")),
    )
    .values(
        lease_expires_at=sa.bindparam("p_until"),
        lease_count=t.tasks.c.lease_count + 1,
        updated_at=sa.bindparam("p_now"),
    )
)


# ------------------------------------------------------------------------------------------------ tasks


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
