"""The unit task-queue adapter: declares `routing.tasks.<code>`, takes messages by basic_get via kombu."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from kombu import Connection, Queue
from shared.messaging import body_bytes, declare_unit_queue
from shared.naming import unit_queue

log = logging.getLogger(__name__)


class QueueMessage(Protocol):
    @property
    def body(self) -> bytes: ...

    def ack(self) -> None: ...

    def reject(self) -> None: ...


class QueueReader(Protocol):
    def get(self) -> QueueMessage | None: ...


class UnitQueues(Protocol):
    """Port: declare a unit's queue; read one unit's queue for the length of a poll."""

    def ping(self) -> None: ...

    def declare(self, codes: Iterable[str]) -> None: ...

    def reader(self, code: str) -> Any: ...  # a context manager yielding a QueueReader


@dataclass
class _KombuMessage:
    message: Any

    @property
    def body(self) -> bytes:
        return body_bytes(self.message)

    def ack(self) -> None:
        self.message.ack()

    def reject(self) -> None:
        # Without requeue the quorum queue dead-letters it to routing.tasks.<code>.dlq.
        self.message.reject(requeue=False)


@dataclass
class _KombuReader:
    queue: Any

    def get(self) -> QueueMessage | None:
        message = self.queue.get(
            no_ack=False, accept=["json", "application/json", "application/octet-stream"]
        )
        return None if message is None else _KombuMessage(message)


class KombuUnitQueues:
    """Unit queues on the broker named by an AMQP URL (or kombu's memory:// transport)."""

    def __init__(self, url: str, *, delivery_limit: int = 5, connect_timeout: float = 5.0) -> None:
        self.url = url
        self.delivery_limit = delivery_limit
        self.connect_timeout = connect_timeout

    def _connection(self) -> Connection:
        return Connection(self.url, connect_timeout=self.connect_timeout)

    def ping(self) -> None:
        with self._connection() as conn:
            conn.ensure_connection(max_retries=1)

    def declare(self, codes: Iterable[str]) -> None:
        with self._connection() as conn:
            conn.ensure_connection(max_retries=1)
            for code in codes:
                declare_unit_queue(conn, code, delivery_limit=self.delivery_limit)

    @contextmanager
    def reader(self, code: str) -> Iterator[QueueReader]:
        with self._connection() as conn:
            conn.ensure_connection(max_retries=1)
            # Declaring is idempotent and makes a poll on a brand-new unit work before the worker ran.
            declare_unit_queue(conn, code, delivery_limit=self.delivery_limit)
            channel = conn.channel()
            try:
                yield _KombuReader(Queue(unit_queue(code), channel=channel, no_declare=True))
            finally:
                channel.close()
