"""Webhook subscriptions and deliveries in the database: fan-out from the status stream, leases, outcomes.

Each status becomes one delivery row per matching subscription (its id is the `webhook-id`, the same on
every retry). A worker leases the oldest pending delivery of a directive, so one directive's statuses go
out in order while other directives' go on; a lease that outlives its worker (kill -9) simply expires.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, RowMapping

from intake.adapters.secret_box import SecretBox
from intake.adapters.status_store import head
from intake.adapters.tables import status_updates, webhook_deliveries, webhook_subscriptions

PENDING = "pending"
DELIVERED = "delivered"
DEAD = "dead"
CANCELLED = "cancelled"


@dataclass(frozen=True)
class Subscription:
    id: str
    url: str
    senders: tuple[str, ...] | None
    directives: tuple[str, ...] | None
    format: str
    active: bool
    disabled_reason: str | None
    created_at: datetime
    created_by: str


@dataclass(frozen=True)
class Delivery:
    id: str
    subscription_id: str
    status_update_id: str
    directive_id: str | None
    cursor: int
    attempts: int
    first_attempt_at: datetime | None
    url: str
    format: str
    secret: str


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _subscription(row: RowMapping) -> Subscription:
    return Subscription(
        id=row["id"],
        url=row["url"],
        senders=None if row["senders"] is None else tuple(row["senders"]),
        directives=None if row["directives"] is None else tuple(row["directives"]),
        format=row["format"],
        active=bool(row["active"]),
        disabled_reason=row["disabled_reason"],
        created_at=_aware(row["created_at"]) or datetime.now(UTC),
        created_by=row["created_by"],
    )


class WebhookStore:
    """Secrets are sealed by `box` as they are stored and opened only to sign a delivery."""

    def __init__(self, engine: Engine, box: SecretBox) -> None:
        self.engine = engine
        self.box = box

    # -- subscriptions ------------------------------------------------------------------------------------

    def create(
        self,
        *,
        url: str,
        senders: Sequence[str] | None,
        directives: Sequence[str] | None,
        format: str,
        secret: str,
        created_by: str,
        now: datetime,
    ) -> Subscription:
        """A subscription that receives the statuses written from now on."""
        subscription_id = str(uuid.uuid4())
        with self.engine.begin() as conn:
            conn.execute(
                sa.insert(webhook_subscriptions).values(
                    id=subscription_id,
                    url=url,
                    senders=None if senders is None else list(senders),
                    directives=None if directives is None else list(directives),
                    format=format,
                    secret=self.box.seal(secret),
                    active=True,
                    disabled_reason=None,
                    fanned_cursor=head(conn),
                    created_at=now,
                    created_by=created_by,
                    deleted_at=None,
                )
            )
        found = self.get(subscription_id)
        assert found is not None
        return found

    def get(self, subscription_id: str) -> Subscription | None:
        with self.engine.connect() as conn:
            row = (
                conn.execute(
                    sa.select(webhook_subscriptions).where(
                        webhook_subscriptions.c.id == subscription_id,
                        webhook_subscriptions.c.deleted_at.is_(None),
                    )
                )
                .mappings()
                .first()
            )
        return None if row is None else _subscription(row)

    def list(self) -> list[Subscription]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(webhook_subscriptions)
                .where(webhook_subscriptions.c.deleted_at.is_(None))
                .order_by(webhook_subscriptions.c.created_at, webhook_subscriptions.c.id)
            ).mappings()
            return [_subscription(row) for row in rows]

    def delete(self, subscription_id: str, *, now: datetime) -> bool:
        """Stops the subscription; its undelivered deliveries are cancelled (kept for the record)."""
        with self.engine.begin() as conn:
            done = conn.execute(
                sa.update(webhook_subscriptions)
                .where(
                    webhook_subscriptions.c.id == subscription_id,
                    webhook_subscriptions.c.deleted_at.is_(None),
                )
                .values(deleted_at=now, active=False)
            )
            if done.rowcount != 1:
                return False
            self._cancel_pending(conn, subscription_id, "subscription deleted")
        return True

    def disable(self, subscription_id: str, reason: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                sa.update(webhook_subscriptions)
                .where(webhook_subscriptions.c.id == subscription_id)
                .values(active=False, disabled_reason=reason)
            )
            self._cancel_pending(conn, subscription_id, reason)

    @staticmethod
    def _cancel_pending(conn: Connection, subscription_id: str, reason: str) -> None:
        conn.execute(
            sa.update(webhook_deliveries)
            .where(
                webhook_deliveries.c.subscription_id == subscription_id,
                webhook_deliveries.c.state == PENDING,
            )
            .values(state=CANCELLED, last_error=reason, lease_until=None)
        )

    # -- fan-out ------------------------------------------------------------------------------------------

    def fan_out(self, *, now: datetime, batch: int = 500) -> int:
        """Makes the deliveries of statuses past each active subscription's cursor; answers how many."""
        made = 0
        with self.engine.connect() as conn:
            ids = list(
                conn.execute(
                    sa.select(webhook_subscriptions.c.id).where(
                        webhook_subscriptions.c.active.is_(True), webhook_subscriptions.c.deleted_at.is_(None)
                    )
                ).scalars()
            )
        for subscription_id in ids:
            made += self._fan_out_one(subscription_id, now=now, batch=batch)
        return made

    def _fan_out_one(self, subscription_id: str, *, now: datetime, batch: int) -> int:
        with self.engine.begin() as conn:
            query = sa.select(webhook_subscriptions).where(webhook_subscriptions.c.id == subscription_id)
            if conn.dialect.name == "postgresql":
                # Two workers fanning out the same subscription take turns; SKIP LOCKED lets one move on.
                query = query.with_for_update(skip_locked=True)
            row = conn.execute(query).mappings().first()
            if row is None or not row["active"] or row["deleted_at"] is not None:
                return 0
            updates = (
                conn.execute(
                    sa.select(
                        status_updates.c.id,
                        status_updates.c.cursor,
                        status_updates.c.directive_id,
                        status_updates.c.sender_code,
                    )
                    .where(status_updates.c.cursor > row["fanned_cursor"])
                    .order_by(status_updates.c.cursor)
                    .limit(batch)
                )
                .mappings()
                .all()
            )
            if not updates:
                return 0
            senders = set(row["senders"]) if row["senders"] is not None else None
            wanted = set(row["directives"]) if row["directives"] is not None else None
            rows: list[dict[str, Any]] = [
                {
                    "id": f"msg_{uuid.uuid4().hex}",
                    "subscription_id": subscription_id,
                    "status_update_id": u["id"],
                    "directive_id": u["directive_id"],
                    "cursor": u["cursor"],
                    "state": PENDING,
                    "attempts": 0,
                    "next_attempt_at": now,
                    "first_attempt_at": None,
                    "lease_until": None,
                    "last_status": None,
                    "last_error": None,
                    "delivered_at": None,
                    "created_at": now,
                }
                for u in updates
                if (senders is None or u["sender_code"] in senders)
                and (wanted is None or u["directive_id"] in wanted)
            ]
            if rows:
                conn.execute(sa.insert(webhook_deliveries), rows)
            conn.execute(
                sa.update(webhook_subscriptions)
                .where(webhook_subscriptions.c.id == subscription_id)
                .values(fanned_cursor=updates[-1]["cursor"])
            )
            return len(rows)

    # -- delivering ---------------------------------------------------------------------------------------

    def lease_due(self, *, now: datetime, lease: timedelta, limit: int) -> list[Delivery]:
        """Leases up to `limit` due deliveries, each the oldest pending one of its subscription and
        directive."""
        d = webhook_deliveries
        earlier = d.alias("earlier")
        blocked = sa.exists().where(
            earlier.c.subscription_id == d.c.subscription_id,
            earlier.c.directive_id == d.c.directive_id,
            earlier.c.state == PENDING,
            earlier.c.cursor < d.c.cursor,
        )
        free = sa.or_(d.c.lease_until.is_(None), d.c.lease_until < now)
        leased: list[Delivery] = []
        with self.engine.begin() as conn:
            query = (
                sa.select(d.c.id)
                .where(d.c.state == PENDING, d.c.next_attempt_at <= now, free, ~blocked)
                .order_by(d.c.next_attempt_at, d.c.cursor)
                .limit(limit)
            )
            if conn.dialect.name == "postgresql":
                query = query.with_for_update(of=d, skip_locked=True)
            ids = list(conn.execute(query).scalars())
            if not ids:
                return []
            conn.execute(sa.update(d).where(d.c.id.in_(ids)).values(lease_until=now + lease))
            rows = conn.execute(
                sa.select(
                    d,
                    webhook_subscriptions.c.url,
                    webhook_subscriptions.c.format,
                    webhook_subscriptions.c.secret,
                )
                .join(webhook_subscriptions, webhook_subscriptions.c.id == d.c.subscription_id)
                .where(d.c.id.in_(ids))
                .order_by(d.c.cursor)
            ).mappings()
            for row in rows:
                leased.append(
                    Delivery(
                        id=row["id"],
                        subscription_id=row["subscription_id"],
                        status_update_id=row["status_update_id"],
                        directive_id=row["directive_id"],
                        cursor=int(row["cursor"]),
                        attempts=int(row["attempts"]),
                        first_attempt_at=_aware(row["first_attempt_at"]),
                        url=row["url"],
                        format=row["format"],
                        secret=self.box.open(row["secret"]),
                    )
                )
        return leased

    def delivered(self, delivery: Delivery, *, status: int, now: datetime) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                sa.update(webhook_deliveries)
                .where(webhook_deliveries.c.id == delivery.id)
                .values(
                    state=DELIVERED,
                    attempts=delivery.attempts + 1,
                    first_attempt_at=delivery.first_attempt_at or now,
                    delivered_at=now,
                    last_status=status,
                    last_error=None,
                    lease_until=None,
                )
            )

    def failed(
        self, delivery: Delivery, *, status: int | None, error: str, now: datetime, retry_at: datetime | None
    ) -> None:
        """Records a failed attempt: pending again at `retry_at`, or dead when there is none."""
        with self.engine.begin() as conn:
            conn.execute(
                sa.update(webhook_deliveries)
                .where(webhook_deliveries.c.id == delivery.id)
                .values(
                    state=PENDING if retry_at is not None else DEAD,
                    attempts=delivery.attempts + 1,
                    first_attempt_at=delivery.first_attempt_at or now,
                    next_attempt_at=retry_at or now,
                    last_status=status,
                    last_error=error[:2000],
                    lease_until=None,
                )
            )

    # -- operators ----------------------------------------------------------------------------------------

    def dead(self, subscription_id: str | None = None) -> list[dict[str, Any]]:
        d = webhook_deliveries
        query = sa.select(d).where(d.c.state == DEAD).order_by(d.c.cursor)
        if subscription_id is not None:
            query = query.where(d.c.subscription_id == subscription_id)
        with self.engine.connect() as conn:
            return [dict(row) for row in conn.execute(query).mappings()]

    def replay(self, *, now: datetime, subscription_id: str | None = None, ids: Sequence[str] = ()) -> int:
        """Dead deliveries become pending again, with a fresh retry window; answers how many."""
        d = webhook_deliveries
        where = [d.c.state == DEAD]
        if subscription_id is not None:
            where.append(d.c.subscription_id == subscription_id)
        if ids:
            where.append(d.c.id.in_(list(ids)))
        with self.engine.begin() as conn:
            active = sa.select(webhook_subscriptions.c.id).where(webhook_subscriptions.c.active.is_(True))
            done = conn.execute(
                sa.update(d)
                .where(*where, d.c.subscription_id.in_(active))
                .values(
                    state=PENDING, attempts=0, first_attempt_at=None, next_attempt_at=now, lease_until=None
                )
            )
            return int(done.rowcount)
