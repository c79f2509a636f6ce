"""The transactional outbox: events written with the state change, relayed to the broker with confirms."""

from __future__ import annotations

import functools
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import PurePath
from typing import Any, Protocol, runtime_checkable

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session

from shared import metrics
from shared.db import dialect_name, json_rows, json_rows_insert
from shared.envelope import Envelope
from shared.messaging import BatchResult, OutgoingMessage

log = logging.getLogger(__name__)


class OutboxPublisher(Protocol):
    """What the relay needs from a publisher (shared.messaging.Publisher, or a fake in unit tests)."""

    def publish(
        self,
        *,
        exchange: str,
        routing_key: str,
        body: bytes,
        message_id: str,
        headers: Mapping[str, Any] | None = None,
        content_type: str = "application/json",
    ) -> None: ...


@runtime_checkable
class BatchPublisher(OutboxPublisher, Protocol):
    """A publisher that can pipeline a batch (shared.messaging.Publisher); the relay then uses it."""

    def publish_batch(self, messages: Sequence[OutgoingMessage]) -> BatchResult: ...


PENDING_INDEX = "ix_outbox_pending"

#: AMQP header naming the relay that published a message: `host/pid/relay`. Operators see which replica
#: sent a message; the scale-out fault run counts publishes per outbox row and relay with it.
PUBLISHER_HEADER = "x-docroute-publisher"
_OLD_INDEX = "ix_outbox_unpublished"


def outbox_table(metadata: sa.MetaData) -> sa.Table:
    """The `outbox` table; `id` is the publish order, `published_at` stays null until the broker confirmed."""
    table = sa.Table(
        "outbox",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("message_id", sa.String(200), nullable=False, unique=True),
        sa.Column("exchange", sa.String(255), nullable=False),
        sa.Column("routing_key", sa.String(255), nullable=False),
        sa.Column("body", sa.LargeBinary, nullable=False),
        sa.Column("headers", sa.JSON, nullable=False, default=dict),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False, default=0),
        sa.Column("last_error", sa.Text, nullable=True),
    )
    # The relay's query: unpublished rows in id order. Partial, so that it holds only the rows still to
    # send: published rows leave it (their entries die and are skipped), and the relay's ordered LIMIT
    # scan never depends on fresh statistics to avoid sorting the whole backlog.
    sa.Index(
        PENDING_INDEX,
        table.c.id,
        postgresql_where=table.c.published_at.is_(None),
        sqlite_where=table.c.published_at.is_(None),
    )
    return table


def migrate_to_pending_index(execute: Callable[[str], Any]) -> None:
    """Replaces the two-column (published_at, id) index with the partial pending index; idempotent.

    For the services' Alembic migrations (`execute` is `op.execute`); the same SQL on PostgreSQL and SQLite.
    """
    execute(f"DROP INDEX IF EXISTS {_OLD_INDEX}")
    execute(f"CREATE INDEX IF NOT EXISTS {PENDING_INDEX} ON outbox (id) WHERE published_at IS NULL")


@dataclass(frozen=True)
class OutboxItem:
    """One message to queue: the envelope, where it goes, and extra AMQP headers."""

    envelope: Envelope
    exchange: str
    routing_key: str | None = None
    headers: Mapping[str, Any] | None = None


def outbox_row(item: OutboxItem, now: datetime) -> dict[str, Any]:
    """The outbox row that queues `item` (for a caller that writes it with its own statement)."""
    headers = dict(item.headers or {})
    # The relay publishes later, outside the request: the correlation id must travel with the row.
    headers.setdefault("correlation_id", item.envelope.correlation_id)
    return {
        "message_id": item.envelope.id,
        "exchange": item.exchange,
        "routing_key": item.routing_key or item.envelope.routing_key,
        "body": item.envelope.to_bytes(),
        "headers": headers,
        "created_at": now,
        "published_at": None,
        "attempts": 0,
    }


#: The columns outbox_row() fills, in its order.
OUTBOX_ROW_COLUMNS = (
    "message_id",
    "exchange",
    "routing_key",
    "body",
    "headers",
    "created_at",
    "published_at",
    "attempts",
)


@functools.cache
def outbox_insert_postgresql(table: sa.Table, param: str = "outbox_rows") -> sa.Insert:
    """PostgreSQL: queues the outbox rows of JSON parameter `param` (json_rows of outbox_row()s), in order.

    Built once per table: building the statement and its cache key took ~0.6 ms per call, more than the
    round trip it saves."""
    return json_rows_insert(table, param, OUTBOX_ROW_COLUMNS)


def add_to_outbox(
    conn: Connection | Session,
    table: sa.Table,
    envelope: Envelope,
    *,
    exchange: str,
    routing_key: str | None = None,
    headers: Mapping[str, Any] | None = None,
) -> None:
    """Queue `envelope` for publishing, inside the caller's transaction (it commits or rolls back with it)."""
    add_many_to_outbox(conn, table, [OutboxItem(envelope, exchange, routing_key, headers)])


def add_many_to_outbox(conn: Connection | Session, table: sa.Table, items: Sequence[OutboxItem]) -> None:
    """Queue several messages in one multi-row INSERT, in the caller's transaction, in publish order."""
    if not items:
        return
    now = datetime.now(UTC)
    rows = [outbox_row(item, now) for item in items]
    if dialect_name(conn) == "postgresql":
        conn.execute(outbox_insert_postgresql(table), {"outbox_rows": json_rows(rows)})
    else:
        conn.execute(sa.insert(table), rows)


def _aware(value: datetime) -> datetime:
    # SQLite hands back naive datetimes; every value we write is UTC.
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _relay_name(engine: Engine) -> str:
    database = engine.url.database or engine.url.get_backend_name()
    return PurePath(database).stem or "outbox"


def batch_query(table: sa.Table, limit: int) -> sa.Select[Any]:
    """The relay's batch: the oldest unpublished rows, in id order."""
    return sa.select(table).where(table.c.published_at.is_(None)).order_by(table.c.id).limit(limit)


def steer_planner_to_ordered_scan(conn: Connection) -> None:
    """For this transaction only: read the pending index in order, never sort the whole backlog.

    The statistics of a queue table are stale by nature (empty at the last ANALYZE, 80,000 rows a minute
    later); PostgreSQL then estimates a handful of pending rows and picks a bitmap scan plus a sort of
    all of them, 100+ ms per batch. The ordered index scan stops at the LIMIT whatever the backlog.
    """
    conn.execute(
        sa.text("SELECT set_config('enable_sort', 'off', true), set_config('enable_bitmapscan', 'off', true)")
    )


def relax_commit_durability(conn: Connection) -> None:
    """For this transaction only: commit without waiting for the WAL flush.

    Used for the relay's marks alone. A mark lost in a database crash only means its rows are published
    again, which at-least-once delivery already allows (the consumers' inbox drops the duplicate); the
    messages themselves were committed durably by the services' own transactions. Not waiting saves a
    WAL flush per batch, which on this class of disk is a third of the relay's time.
    """
    conn.execute(sa.text("SELECT set_config('synchronous_commit', 'off', true)"))


class OutboxRelay:
    """Publishes unpublished outbox rows in id order; marks a row published only after the broker confirmed.

    On PostgreSQL rows are taken `FOR UPDATE SKIP LOCKED`, so several relays can run side by side. A row
    that fails stops the batch (later rows wait, which keeps per-outbox order) and is retried next round.
    Delivery is at least once: a relay killed after a confirm but before its commit publishes again,
    and the consumers' inbox drops the duplicate.
    """

    def __init__(
        self,
        engine: Engine,
        table: sa.Table,
        publisher: OutboxPublisher,
        *,
        batch_size: int = 100,
        idle_sleep: float = 0.2,
        busy_sleep: float = 0.01,
        max_backoff: float = 5.0,
        backlog_interval: float = 1.0,
        name: str | None = None,
    ) -> None:
        self.engine = engine
        self.backlog_interval = backlog_interval
        self.table = table
        self.publisher = publisher
        self.batch_size = batch_size
        self.idle_sleep = idle_sleep
        self.busy_sleep = min(busy_sleep, idle_sleep)
        self.max_backoff = max_backoff
        self.name = name or _relay_name(engine)
        # Set by wake(): rows were just committed in this process, so the next round starts now instead
        # of after the idle pause (up to `idle_sleep`, which a file archived every 30 ms waited out).
        self._woken = threading.Event()

    def wake(self) -> None:
        """Asks for a round now: the caller has just committed outbox rows (same process).

        Cheap and safe from any thread; the rows are found by the relay's usual query, so a wake-up that
        comes while a round is running starts another one right after it (none is lost). Rows committed
        by other processes are still found by polling."""
        self._woken.set()

    def run_once(self) -> int:
        """Publish one batch; returns how many rows were confirmed.

        Raises the publisher's error after recording it on the row (rows confirmed before it stay marked).
        """
        query = batch_query(self.table, self.batch_size)
        if self.engine.dialect.name == "postgresql":
            # Row locks held for the batch let several relays share the table without double publishing.
            with self.engine.begin() as conn:
                steer_planner_to_ordered_scan(conn)
                relax_commit_durability(conn)
                rows = conn.execute(query.with_for_update(skip_locked=True)).all()
                published, failure = self._publish(rows)
                self._mark(conn, rows, published, failure)
        else:
            # SQLite has one writer at a time: a write transaction held across publishes would block the
            # service's own writes, so rows are read first and marked afterwards in one short transaction.
            with self.engine.connect() as conn:
                rows = conn.execute(query).all()
            published, failure = self._publish(rows)
            if rows:
                with self.engine.begin() as conn:
                    self._mark(conn, rows, published, failure)
        if failure is not None:
            # The batch publisher had every row on the wire; a row at a time stopped at the failed one.
            sent = len(rows) if isinstance(self.publisher, BatchPublisher) else published + 1
            if published < sent:
                # Handed to the broker but not confirmed: the broker may still route them (a node that was
                # only slow, or paused), and they are sent again, by this relay or another: they can arrive
                # twice, which consumers drop by message id. Named here so that a copy can be accounted for.
                log.warning(
                    "outbox rows sent without a confirm; they will be sent again",
                    extra={
                        "relay": self.name,
                        "publisher": self.identity(),
                        "in_doubt": [row.message_id for row in rows[published:sent]],
                    },
                )
            # Raised only now, after the marks above were committed.
            raise failure
        return published

    def identity(self) -> str:
        """This relay as PUBLISHER_HEADER names it (the pid read each time: a forked child is another)."""
        return f"{socket.gethostname()}/{os.getpid()}/{self.name}"

    def _publish(self, rows: Sequence[sa.Row[Any]]) -> tuple[int, Exception | None]:
        """Publish `rows` in order; (how many leading rows the broker confirmed, why the next one failed)."""
        if not rows:
            return 0, None
        publisher = self.identity()
        if isinstance(self.publisher, BatchPublisher):
            # One round trip for the whole batch: the broker's confirms are awaited once, not per row.
            result = self.publisher.publish_batch(
                [
                    OutgoingMessage(
                        exchange=row.exchange,
                        routing_key=row.routing_key,
                        body=bytes(row.body),
                        message_id=row.message_id,
                        headers={**(row.headers or {}), PUBLISHER_HEADER: publisher},
                    )
                    for row in rows
                ]
            )
            return result.confirmed, result.error
        published = 0
        for row in rows:
            try:
                self.publisher.publish(
                    exchange=row.exchange,
                    routing_key=row.routing_key,
                    body=bytes(row.body),
                    message_id=row.message_id,
                    headers={**(row.headers or {}), PUBLISHER_HEADER: publisher},
                )
            except Exception as exc:  # noqa: BLE001 - recorded on the row, then raised by run_once
                # Later rows wait for this one, which keeps the outbox's order on the wire.
                return published, exc
            published += 1
        return published, None

    def _mark(
        self, conn: Connection, rows: Sequence[sa.Row[Any]], published: int, failure: Exception | None
    ) -> None:
        """Mark the confirmed rows published (one UPDATE) and record the failure on the row that stopped."""
        t = self.table
        if published:
            ids = [row.id for row in rows[:published]]
            # On PostgreSQL one array parameter, not one bind parameter per row of the batch.
            chosen = (
                t.c.id == sa.any_(sa.bindparam("ids", ids, type_=postgresql.ARRAY(sa.Integer)))
                if conn.dialect.name == "postgresql"
                else t.c.id.in_(ids)
            )
            conn.execute(
                sa.update(t)
                .where(chosen)
                .values(published_at=datetime.now(UTC), attempts=t.c.attempts + 1, last_error=None)
            )
        if failure is not None and published < len(rows):
            # Rows after the failed one stay unmarked, even if the broker took them: they go again after it.
            conn.execute(
                sa.update(t)
                .where(t.c.id == rows[published].id)
                .values(attempts=t.c.attempts + 1, last_error=f"{type(failure).__name__}: {failure}"[:2000])
            )

    def backlog(self) -> tuple[int, float]:
        """(unpublished rows, age in seconds of the oldest one); also updates the backlog gauges."""
        t = self.table
        with self.engine.connect() as conn:
            count, oldest = conn.execute(
                sa.select(sa.func.count(), sa.func.min(t.c.created_at)).where(t.c.published_at.is_(None))
            ).one()
        age = 0.0
        if oldest is not None:
            if isinstance(oldest, str):  # SQLite's func.min() loses the column type
                oldest = datetime.fromisoformat(oldest)
            age = max((datetime.now(UTC) - _aware(oldest)).total_seconds(), 0.0)
        metrics.OUTBOX_BACKLOG.labels(self.name).set(count)
        metrics.OUTBOX_OLDEST_AGE.labels(self.name).set(age)
        return int(count), age

    def run(self, stop: threading.Event) -> None:
        """Relay until `stop` is set; a broker or database outage is logged and retried with backoff.

        A full batch means more is waiting: the next round starts at once. After a round that found rows,
        the next poll comes `busy_sleep` later (events tend to come in streams); each empty round doubles
        the pause up to `idle_sleep`, so an idle relay polls rarely and a busy one adds little latency.
        """
        backoff = self.idle_sleep
        pause = self.busy_sleep
        counted_at = float("-inf")

        # stop ends a pause at once, as stop.wait() did: a stop sets the wake-up event too.
        def wake_on_stop() -> None:
            stop.wait()
            self._woken.set()

        threading.Thread(target=wake_on_stop, name=f"{self.name}-relay-stop", daemon=True).start()
        while not stop.is_set():
            # Cleared before the round: a wake-up during it (rows committed after its query) is kept.
            self._woken.clear()
            try:
                published = self.run_once()
                # The backlog gauges need a count: once per interval, not after every batch.
                if time.monotonic() - counted_at >= self.backlog_interval:
                    self.backlog()
                    counted_at = time.monotonic()
            except Exception:
                log.exception("outbox relay round failed; retrying", extra={"relay": self.name})
                stop.wait(backoff)
                backoff = min(max(backoff * 2, 0.1), self.max_backoff)
                continue
            backoff = self.idle_sleep
            if published >= self.batch_size:
                pause = self.busy_sleep
                continue
            pause = self.busy_sleep if published else min(max(pause * 2, self.busy_sleep), self.idle_sleep)
            if not stop.is_set():  # a stop that came before the clear above is seen here
                self._woken.wait(pause)
