"""The transactional outbox: events written with the state change, relayed to the broker with confirms."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from datetime import UTC, datetime
from pathlib import PurePath
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session

from shared import metrics
from shared.envelope import Envelope

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
    # The relay's query: unpublished rows in id order.
    sa.Index("ix_outbox_unpublished", table.c.published_at, table.c.id)
    return table


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
    all_headers = dict(headers or {})
    # The relay publishes later, outside the request: the correlation id must travel with the row.
    all_headers.setdefault("correlation_id", envelope.correlation_id)
    conn.execute(
        sa.insert(table).values(
            message_id=envelope.id,
            exchange=exchange,
            routing_key=routing_key or envelope.routing_key,
            body=envelope.to_bytes(),
            headers=all_headers,
            created_at=datetime.now(UTC),
            published_at=None,
            attempts=0,
        )
    )


def _aware(value: datetime) -> datetime:
    # SQLite hands back naive datetimes; every value we write is UTC.
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _relay_name(engine: Engine) -> str:
    database = engine.url.database or engine.url.get_backend_name()
    return PurePath(database).stem or "outbox"


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
        max_backoff: float = 5.0,
        name: str | None = None,
    ) -> None:
        self.engine = engine
        self.table = table
        self.publisher = publisher
        self.batch_size = batch_size
        self.idle_sleep = idle_sleep
        self.max_backoff = max_backoff
        self.name = name or _relay_name(engine)

    def run_once(self) -> int:
        """Publish one batch; returns how many rows were confirmed.

        Raises the publisher's error after recording it on the row (rows confirmed before it stay marked).
        """
        query = (
            sa.select(self.table)
            .where(self.table.c.published_at.is_(None))
            .order_by(self.table.c.id)
            .limit(self.batch_size)
        )
        if self.engine.dialect.name == "postgresql":
            # Row locks held for the batch let several relays share the table without double publishing.
            with self.engine.begin() as conn:
                rows = conn.execute(query.with_for_update(skip_locked=True)).all()
                published, failure = self._publish_rows(rows, lambda: nullcontext(conn))
        else:
            # SQLite has one writer at a time: a write transaction held across publishes would block the
            # service's own writes, so rows are read first and each is marked in its own short transaction.
            with self.engine.connect() as conn:
                rows = conn.execute(query).all()
            published, failure = self._publish_rows(rows, self.engine.begin)
        if failure is not None:
            # Raised only now, after the marks above were committed.
            raise failure
        return published

    def _publish_rows(
        self, rows: Sequence[sa.Row[Any]], transaction: Callable[[], AbstractContextManager[Connection]]
    ) -> tuple[int, Exception | None]:
        t = self.table
        published = 0
        for row in rows:
            try:
                self.publisher.publish(
                    exchange=row.exchange,
                    routing_key=row.routing_key,
                    body=bytes(row.body),
                    message_id=row.message_id,
                    headers=row.headers or {},
                )
            except Exception as exc:  # noqa: BLE001 - recorded on the row, then raised by run_once
                with transaction() as conn:
                    conn.execute(
                        sa.update(t)
                        .where(t.c.id == row.id)
                        .values(attempts=t.c.attempts + 1, last_error=f"{type(exc).__name__}: {exc}"[:2000])
                    )
                # Later rows wait for this one, which keeps the outbox's order on the wire.
                return published, exc
            with transaction() as conn:
                conn.execute(
                    sa.update(t)
                    .where(t.c.id == row.id)
                    .values(published_at=datetime.now(UTC), attempts=t.c.attempts + 1, last_error=None)
                )
            published += 1
        return published, None

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
        """Relay until `stop` is set; a broker or database outage is logged and retried with backoff."""
        backoff = self.idle_sleep
        while not stop.is_set():
            try:
                published = self.run_once()
                self.backlog()
            except Exception:
                log.exception("outbox relay round failed; retrying", extra={"relay": self.name})
                stop.wait(backoff)
                backoff = min(max(backoff * 2, 0.1), self.max_backoff)
                continue
            backoff = self.idle_sleep
            # A full batch means more may be waiting: go again at once.
            if published < self.batch_size:
                stop.wait(self.idle_sleep)
