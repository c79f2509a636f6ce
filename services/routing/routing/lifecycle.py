"""A directive's life after routing: revoked by its sender or a clerk, or refused by a clerk, every open
task is cancelled and each unit that held one is told on its own queue."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from shared.envelope import Envelope
from shared.inbox import claim
from sqlalchemy.engine import Engine

from routing.adapters import tables as t
from routing.domain.errors import RoutingError
from routing.domain.tasks import OPEN, Status
from routing.ledger import CONSUMER, move, offer, utcnow
from routing.messages import TASK_CANCELLED


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


def _end_directive(
    envelope: Envelope, *, engine: Engine, status: str, note: str, actor: str, told: dict[str, str]
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
            .values(status=status, updated_at=utcnow())
        )
    return cancelled
