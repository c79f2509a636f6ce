"""Pruning by age: outbox rows the broker confirmed long ago and inbox (dedup) rows older than the window in
which a copy of their message can still arrive.

Both tables only grow otherwise: a row per event published, a row per event handled. A published outbox row
is history once the broker confirmed it (a relay never looks at it again); an inbox row is what makes a second
delivery of the same message a no-op, so it must outlive every way a copy can still come:

- a consumer that loses its connection or channel gets the message again within seconds;
- a relay that lost the broker's confirm, or died before marking the row, publishes it again on its next
  round: seconds, or as long as the database or the broker stays away;
- a consumer paused by an unavailable dependency holds its message for the whole outage;
- a dead letter replayed by an operator (`docroute dlq replay`) comes back whenever they replay it.

So DOCROUTE_INBOX_RETENTION_SECONDS (default 14 days, at least 1 day) must exceed the longest outage the
deployment rides out plus the age of the oldest dead letter anyone would still replay; dead letters older than
the window must not be replayed without checking that their effect is not already there.
DOCROUTE_OUTBOX_RETENTION_SECONDS (default 7 days, at least 1 hour) only bounds how long published rows stay
for inspection; unpublished rows are never pruned. Each worker prunes its own service's tables every
DOCROUTE_PRUNE_INTERVAL_SECONDS (default 1 hour), in batches so that no round holds long locks; several
replicas pruning at once only delete fewer rows each.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from prometheus_client import Counter
from sqlalchemy.engine import Engine

from shared.settings import PruneSettings

log = logging.getLogger(__name__)

PRUNED = Counter("docroute_pruned_rows_total", "Outbox and inbox rows removed by age.", ["service", "table"])

BATCH = 5000


def _delete_in_batches(engine: Engine, delete_batch: Callable[[sa.Connection], int]) -> int:
    """Runs `delete_batch` in its own short transaction until it deletes fewer than BATCH rows."""
    total = 0
    while True:
        with engine.begin() as conn:
            deleted = delete_batch(conn)
        total += deleted
        if deleted < BATCH:
            return total


def prune_outbox(
    engine: Engine, table: sa.Table, *, older_than: timedelta, now: datetime | None = None
) -> int:
    """Deletes outbox rows published before `now - older_than`; never an unpublished one. The rows deleted.

    Walks the primary key oldest first (published rows are, roughly, the low ids): no extra index needed.
    """
    cutoff = (now or datetime.now(UTC)) - older_than
    old = (
        sa.select(table.c.id)
        .where(table.c.published_at.is_not(None), table.c.published_at < cutoff)
        .order_by(table.c.id)
        .limit(BATCH)
        .scalar_subquery()
    )

    def batch(conn: sa.Connection) -> int:
        return int(conn.execute(sa.delete(table).where(table.c.id.in_(old))).rowcount or 0)

    return _delete_in_batches(engine, batch)


def prune_inbox(
    engine: Engine, table: sa.Table, *, older_than: timedelta, now: datetime | None = None
) -> int:
    """Deletes inbox rows of messages handled before `now - older_than`. The rows deleted."""
    cutoff = (now or datetime.now(UTC)) - older_than
    key = sa.tuple_(table.c.message_id, table.c.consumer)
    old = sa.select(table.c.message_id, table.c.consumer).where(table.c.processed_at < cutoff).limit(BATCH)

    def batch(conn: sa.Connection) -> int:
        return int(conn.execute(sa.delete(table).where(key.in_(old))).rowcount or 0)

    return _delete_in_batches(engine, batch)


@dataclass
class Pruner:
    """One service's pruning round (for a shared.runtime.Periodic)."""

    service: str
    engine: Engine
    outbox: sa.Table
    inbox: sa.Table | None
    settings: PruneSettings
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)

    def round(self) -> tuple[int, int]:
        """(outbox rows, inbox rows) removed."""
        now = self.clock()
        outbox = prune_outbox(
            self.engine,
            self.outbox,
            older_than=timedelta(seconds=self.settings.outbox_retention_seconds),
            now=now,
        )
        inbox = 0
        if self.inbox is not None:
            inbox = prune_inbox(
                self.engine,
                self.inbox,
                older_than=timedelta(seconds=self.settings.inbox_retention_seconds),
                now=now,
            )
        PRUNED.labels(self.service, "outbox").inc(outbox)
        PRUNED.labels(self.service, "inbox").inc(inbox)
        if outbox or inbox:
            log.info(
                "pruned %d published outbox row(s) and %d inbox row(s)",
                outbox,
                inbox,
                extra={
                    "service": self.service,
                    "outbox_retention_seconds": self.settings.outbox_retention_seconds,
                    "inbox_retention_seconds": self.settings.inbox_retention_seconds,
                },
            )
        return outbox, inbox
