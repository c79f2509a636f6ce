"""A directive's life after routing. Revoked by its sender or a clerk, refused by a clerk, or replaced by a
new directive: every open task is cancelled and each unit that held one is told on its own queue. Updated:
due dates that came from the directive move, the rules are evaluated again (tasks added or cancelled where
the set of units changed) and each unit with an open task is told on its own queue."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date
from typing import Any

import sqlalchemy as sa
from shared.envelope import Envelope
from shared.inbox import claim
from sqlalchemy.engine import Connection, Engine

from routing.adapters import tables as t
from routing.adapters.repository import iso, task_json
from routing.dispatch import Reference, create_tasks, load_reference
from routing.domain.calendar import WorkingCalendar, end_of_day
from routing.domain.errors import RoutingError
from routing.domain.rules import PlannedTask, RuleSet, derive_tasks
from routing.domain.tasks import OPEN, Status
from routing.ledger import (
    CONSUMER,
    FINAL_DIRECTIVE_STATUSES,
    add_history,
    emit,
    load_task,
    move,
    offer,
    refresh_directive_status,
    utcnow,
)
from routing.messages import TASK_CANCELLED, TASK_UPDATED
from routing.rules import facts_from_metadata


class DirectiveNotYetRouted(RoutingError):
    """The revocation arrived before the directive itself was routed: the message is tried again."""


def revoke_directive(envelope: Envelope, *, engine: Engine) -> list[str]:
    """Handles intake.directive_revoked: cancels every open task with the reason in its history, puts a
    routing.task_cancelled on each holder's queue, marks the directive revoked. Idempotent on the envelope
    and on the directive (a second revocation finds nothing open)."""
    payload = envelope.payload
    return _end_directive(
        envelope,
        engine=engine,
        status="revoked",
        note=f"Văn bản bị thu hồi: {payload['reason']}",
        actor=str(payload.get("revoked_by") or "intake"),
        told={"reason": str(payload["reason"]), "revoked_at": str(payload["revoked_at"])},
    )


def reject_directive(envelope: Envelope, *, engine: Engine) -> list[str]:
    """Handles intake.directive_rejected (a clerk refused the directive, its sender got status 02): as a
    revocation, every open task is cancelled and each holder told, and the directive is rejected for good.
    The unit's message carries `reason` and, as for a revocation, `revoked_at` (when it was withdrawn)."""
    payload = envelope.payload
    return _end_directive(
        envelope,
        engine=engine,
        status="rejected",
        note=f"Văn bản bị từ chối tiếp nhận: {payload['reason']}",
        actor=str(payload.get("rejected_by") or "intake"),
        told={"reason": str(payload["reason"]), "revoked_at": str(payload["rejected_at"])},
    )


def replace_directive(envelope: Envelope, *, engine: Engine) -> list[str]:
    """Handles intake.directive_replaced: as a revocation, every open task is cancelled (the history and
    each holder's routing.task_cancelled pointing to the new directive), and the directive is replaced for
    good, naming the one that replaced it. The new directive is routed from its own registration."""
    payload = envelope.payload
    new = payload["replacement"]
    number = new.get("number") or new["directive_id"]
    return _end_directive(
        envelope,
        engine=engine,
        status="replaced",
        note=f"Văn bản bị thay thế bởi văn bản số {number} ({new['directive_id']}): {payload['reason']}",
        actor=str(payload.get("replaced_by") or "intake"),
        told={
            "reason": str(payload["reason"]),
            "revoked_at": str(payload["replaced_at"]),
            "replaced_by": str(new["directive_id"]),
            "replaced_by_number": str(number),
        },
        values={"replaced_by": str(new["directive_id"])},
    )


def _end_directive(
    envelope: Envelope,
    *,
    engine: Engine,
    status: str,
    note: str,
    actor: str,
    told: dict[str, str],
    values: dict[str, Any] | None = None,
) -> list[str]:
    directive_id = str(envelope.payload["directive_id"])
    cancelled: list[str] = []
    with engine.begin() as conn:
        if not claim(conn, t.inbox, envelope.id, CONSUMER):
            return []
        directive = conn.execute(sa.select(t.directives).where(t.directives.c.id == directive_id)).first()
        if directive is None:
            raise DirectiveNotYetRouted(f"directive {directive_id} is not routed yet")
        tasks = conn.execute(
            sa.select(t.tasks)
            .where(t.tasks.c.directive_id == directive_id, t.tasks.c.status.in_([s.value for s in OPEN]))
            .order_by(t.tasks.c.unit)
        ).all()
        for task in tasks:
            move(conn, task, Status.CANCELLED, actor=actor, note=note)

            def extra(_: dict[str, Any], *, what: dict[str, str] = told) -> dict[str, Any]:
                return dict(what)

            offer(conn, task.id, event_type=TASK_CANCELLED, extra=extra)
            cancelled.append(task.id)
        conn.execute(
            sa.update(t.directives)
            .where(t.directives.c.id == directive_id)
            .values(status=status, updated_at=utcnow(), **(values or {}))
        )
    return cancelled


@dataclass
class UpdateOutcome:
    """What an update did to a directive's tasks (task ids)."""

    moved: list[str] = field(default_factory=list)
    added: list[str] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)
    told: list[str] = field(default_factory=list)


def update_directive(
    envelope: Envelope, *, engine: Engine, calendar: WorkingCalendar, reference: Reference | None = None
) -> UpdateOutcome:
    """Handles intake.directive_updated: applies the directive's new revision to its tasks, once.

    - An open task whose due date came from the directive (its rule's date for the old revision, or the
      directive's own due date) moves to the date the new revision gives it; the history says so.
    - The active rules are evaluated again: a unit they now give the directive and that has no task gets
      one (offered on its queue); an open task a rule made for a unit they no longer give it is cancelled
      (routing.task_cancelled on its queue).
    - Every other open task's unit gets routing.task_updated with the changes.
    A revision not newer than the one applied (a redelivery, or an older update arriving late) and a
    directive that has ended (revoked, replaced, refused) change nothing."""
    payload = envelope.payload
    directive_id = str(payload["directive_id"])
    revision = int(payload["revision"])
    metadata = dict(payload.get("metadata") or {})
    outcome = UpdateOutcome()
    now = utcnow()
    with engine.begin() as conn:
        if not claim(conn, t.inbox, envelope.id, CONSUMER):
            return outcome
        directive = conn.execute(
            sa.select(t.directives).where(t.directives.c.id == directive_id).with_for_update()
        ).first()
        if directive is None:
            raise DirectiveNotYetRouted(f"directive {directive_id} is not routed yet")
        if revision <= directive.revision or directive.status in FINAL_DIRECTIVE_STATUSES:
            return outcome
        current, units = reference.get(conn) if reference is not None else load_reference(conn)
        ruleset = current.ruleset if current else RuleSet()
        before = facts_from_metadata(directive.metadata or {}, directive.arrival_date)
        merged = {**(directive.metadata or {}), **metadata}
        after = facts_from_metadata(merged, directive.arrival_date)
        old_plan = {p.unit: p for p in derive_tasks(ruleset, before, units, calendar).tasks}
        derivation = derive_tasks(ruleset, after, units, calendar)
        new_plan = {p.unit: p for p in derivation.tasks}
        known = {a.get("id") for a in directive.attachments or []}
        added_files = [a for a in payload.get("attachments_added") or [] if a.get("id") not in known]
        conn.execute(
            sa.update(t.directives)
            .where(t.directives.c.id == directive_id)
            .values(
                subject=after.subject or directive.subject,
                urgency=after.urgency,
                due_date=after.due_date,
                metadata=merged,
                attachments=[*(directive.attachments or []), *added_files],
                matched_rules=list(derivation.matched_rules),
                revision=revision,
                updated_at=now,
            )
        )
        actor = str(payload.get("updated_by") or "intake")
        context = _UpdateContext(
            revision=revision,
            changes=dict(payload.get("changes") or {}),
            reason=payload.get("reason"),
            at=str(payload["updated_at"]),
            actor=actor,
        )
        tasks = conn.execute(
            sa.select(t.tasks).where(t.tasks.c.directive_id == directive_id).order_by(t.tasks.c.unit)
        ).all()
        for task in tasks:
            if Status(task.status) not in OPEN:
                continue
            if task.rule_id is not None and task.unit not in new_plan:
                _cancel_for_update(conn, task, context)
                outcome.cancelled.append(task.id)
                continue
            target = _new_due(task, old_plan, new_plan, directive.due_date, after.due_date)
            moved_from = None
            if target is not None and target != task.due_date:
                _move_due(conn, task, target, context, now=now)
                outcome.moved.append(task.id)
                moved_from = iso(task.due_date)

            def extra(_: dict[str, Any], *, since: str | None = moved_from) -> dict[str, Any]:
                return context.told(due_date_from=since)

            offer(conn, task.id, event_type=TASK_UPDATED, extra=extra)
            outcome.told.append(task.id)
        have = {task.unit for task in tasks}
        fresh = [p for p in derivation.tasks if p.unit not in have]
        if fresh:
            row = conn.execute(sa.select(t.directives).where(t.directives.c.id == directive_id)).first()
            outcome.added = create_tasks(
                conn, row, fresh, rule_version=current.version if current else None, actor="rules", now=now
            )
        refresh_directive_status(conn, directive_id)
    return outcome


@dataclass(frozen=True)
class _UpdateContext:
    revision: int
    changes: dict[str, Any]
    reason: str | None
    at: str
    actor: str

    def told(self, **more: Any) -> dict[str, Any]:
        return {"revision": self.revision, "changes": self.changes, "reason": self.reason, **more}

    @property
    def label(self) -> str:
        return f"văn bản cập nhật (lần {self.revision})" + (f": {self.reason}" if self.reason else "")


def _new_due(
    task: Any,
    old_plan: dict[str, PlannedTask],
    new_plan: dict[str, PlannedTask],
    old_due: date | None,
    new_due: date | None,
) -> date | None:
    """The due date the update gives an open task, or None to leave it: a rule's task still at its rule's
    date for the old revision takes the rule's date for the new one; any task at the directive's own due
    date (a clerk's assignment defaults to it) takes the new one. A date a clerk set stays."""
    old, new = old_plan.get(task.unit), new_plan.get(task.unit)
    if task.rule_id is not None and old is not None and new is not None and task.due_date == old.due_date:
        return new.due_date
    if old_due is not None and task.due_date == old_due:
        return new_due
    return None


def _move_due(conn: Connection, task: Any, target: date, context: _UpdateContext, *, now: Any) -> None:
    conn.execute(
        sa.update(t.tasks)
        .where(t.tasks.c.id == task.id)
        .values(due_date=target, due_at=end_of_day(target).astimezone(UTC), overdue_at=None, updated_at=now)
    )
    was = task.due_date.isoformat() if task.due_date else "không có"
    add_history(
        conn,
        task.id,
        task.status,
        task.status,
        context.actor,
        note=f"Hạn xử lý chuyển từ {was} sang {target.isoformat()} theo {context.label}",
    )
    # The archive and intake follow a task's changes on routing.events, as for a clerk's reassignment.
    emit(conn, "task_assigned", task_json(load_task(conn, task.id)))


def _cancel_for_update(conn: Connection, task: Any, context: _UpdateContext) -> None:
    reason = f"Theo {context.label}, các quy tắc phân công không còn giao văn bản cho đơn vị này"
    move(conn, task, Status.CANCELLED, actor=context.actor, note=reason)

    def extra(_: dict[str, Any]) -> dict[str, Any]:
        return {"reason": reason, "revoked_at": context.at}

    offer(conn, task.id, event_type=TASK_CANCELLED, extra=extra)
