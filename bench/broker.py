"""Broker helpers of the suite (pika, like the unit-side client): queue depths, publishing task offers,
an arrival recorder for unit queues and a tap on an events exchange."""

from __future__ import annotations

import contextlib
import json
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pika
from pika.adapters.blocking_connection import BlockingChannel, BlockingConnection
from shared.naming import (
    PRODUCERS,
    SUBSCRIPTIONS,
    dlq_name,
    events_exchange,
    queue_name,
    unrouted_name,
)

TASKS_EXCHANGE = "routing.tasks"


def connect(amqp_url: str) -> BlockingConnection:
    params = pika.URLParameters(amqp_url)
    params.heartbeat = 0
    # The broker can take many seconds to answer a handshake while it creates a burst of quorum queues
    # (row 5's first pass declares fifty): wait for it rather than lose the row.
    params.stack_timeout = 120
    params.connection_attempts = 3
    params.retry_delay = 2
    return pika.BlockingConnection(params)


def queue_depths(amqp_url: str, queues: Iterable[str]) -> dict[str, int | None]:
    """Ready messages per queue (passive declares on ONE connection; None for a missing queue).

    One connection per check, not per queue: connection churn at polling rates stalls RabbitMQ."""
    conn = connect(amqp_url)
    out: dict[str, int | None] = {}
    try:
        channel = conn.channel()
        for queue in queues:
            try:
                out[queue] = int(channel.queue_declare(queue, passive=True).method.message_count)
            except pika.exceptions.ChannelClosedByBroker:
                # A failed passive declare closes the channel; the connection stays usable.
                out[queue] = None
                channel = conn.channel()
    finally:
        with contextlib.suppress(Exception):
            conn.close()
    return out


def system_queues() -> list[str]:
    """The queues every docroute worker declares (consumer queues with their DLQs, unrouted-event queues)."""
    consumers = [queue_name(consumer, source, event) for consumer, source, event, _ in SUBSCRIPTIONS]
    return [
        *consumers,
        *(dlq_name(queue) for queue in consumers),
        *(unrouted_name(events_exchange(service)) for service in PRODUCERS),
    ]


def _each_queue(amqp_url: str, queues: Iterable[str], act: Callable[[BlockingChannel, str], int]) -> int:
    """Applies `act` to every queue on one connection (a missing queue closes the channel: skipped, with a
    new channel for the next); the sum of what `act` returned."""
    conn = connect(amqp_url)
    total = 0
    try:
        channel = conn.channel()
        for queue in queues:
            try:
                total += act(channel, queue)
            except pika.exceptions.ChannelClosedByBroker:
                channel = conn.channel()
    finally:
        with contextlib.suppress(Exception):
            conn.close()
    return total


def purge_queues(amqp_url: str, queues: Iterable[str]) -> int:
    """Empties `queues` (missing ones are skipped); the messages purged.

    The rows share one vhost: events one row's producers left for a service that row did not run (row 2's
    3,000 directive_registered for the archive) would otherwise meet the next row's workers."""
    return _each_queue(
        amqp_url, queues, lambda channel, queue: int(channel.queue_purge(queue).method.message_count)
    )


def delete_queues(amqp_url: str, queues: Iterable[str]) -> int:
    """Deletes `queues` (missing ones count as deleted); how many were deleted."""

    def delete(channel: BlockingChannel, queue: str) -> int:
        channel.queue_delete(queue)
        return 1

    return _each_queue(amqp_url, queues, delete)


def unit_queues_in(vhost: str) -> list[str]:
    """The unit task queues (and their DLQs) that exist in `vhost`, listed by rabbitmqctl."""
    listed = subprocess.run(
        ["rabbitmqctl", "-q", "list_queues", "-p", vhost, "--no-table-headers", "name"],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return [name for name in listed.stdout.split() if name.startswith(f"{TASKS_EXCHANGE}.")]


def queue_consumers(amqp_url: str, queue: str) -> int | None:
    """Consumers attached to `queue` now, or None when the queue does not exist."""
    conn = connect(amqp_url)
    try:
        return int(conn.channel().queue_declare(queue, passive=True).method.consumer_count)
    except pika.exceptions.ChannelClosedByBroker:
        return None
    finally:
        with contextlib.suppress(Exception):
            conn.close()


def queue_depth(amqp_url: str, queue: str) -> int | None:
    """Ready messages in `queue`, or None when the queue does not exist."""
    return queue_depths(amqp_url, [queue])[queue]


def offer_envelope(task_id: str, unit: str, directive_id: str) -> bytes:
    """A routing.task_offered envelope as the routing outbox emits it (payload: the task, key `id`)."""
    from shared.envelope import Envelope

    body: bytes = Envelope.new(
        "routing.task_offered",
        {"id": task_id, "unit": unit, "directive_id": directive_id, "status": "assigned"},
        producer="routing",
    ).to_bytes()
    return body


def publish_offers(amqp_url: str, offers: Iterable[tuple[str, str, str]]) -> int:
    """Publishes (task id, unit, directive id) offers to routing.tasks with the unit as routing key."""
    conn = connect(amqp_url)
    count = 0
    try:
        channel = conn.channel()
        channel.confirm_delivery()
        for task_id, unit, directive_id in offers:
            channel.basic_publish(
                TASKS_EXCHANGE,
                unit,
                offer_envelope(task_id, unit, directive_id),
                pika.BasicProperties(
                    content_type="application/json",
                    delivery_mode=2,
                    message_id=str(uuid.uuid4()),
                ),
                mandatory=True,
            )
            count += 1
    finally:
        conn.close()
    return count


@dataclass
class Arrival:
    task_id: str
    directive_id: str
    unit: str
    at: float  # wall clock (time.time) of the delivery to the recorder
    created: float  # wall clock of the offer's envelope (routing created the task and its offer then)


@dataclass
class ArrivalRecorder:
    """Consumes every unit queue (auto-ack) and records when each task offer arrived.

    A task counts as "available in the unit's queue" at the moment the broker delivers it to a consumer
    of routing.tasks.<code> — the earliest a unit (docroute-unit client or a REST poll) could have it."""

    amqp_url: str
    queues: list[str]
    # Called on the recorder's thread for each arrival (row 2's closed loop waits on it).
    on_arrival: Callable[[Arrival], None] | None = None
    arrivals: list[Arrival] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _ready: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _on_message(self, channel: BlockingChannel, method: Any, properties: Any, body: bytes) -> None:
        at = time.time()
        try:
            envelope = json.loads(body.decode("utf-8"))
            payload = envelope["payload"]
            created = datetime.fromisoformat(envelope["occurred_at"]).timestamp()
            arrival = Arrival(
                str(payload["id"]), str(payload["directive_id"]), str(payload["unit"]), at, created
            )
        except (ValueError, KeyError, TypeError) as exc:
            self.errors.append(f"unreadable offer on {method.routing_key}: {exc}")
            return
        with self._lock:
            self.arrivals.append(arrival)
        if self.on_arrival is not None:
            self.on_arrival(arrival)

    def _run(self) -> None:
        conn = connect(self.amqp_url)
        try:
            channel = conn.channel()
            channel.basic_qos(prefetch_count=1000)
            for queue in self.queues:
                channel.basic_consume(queue, self._on_message, auto_ack=True)
            self._ready.set()
            while not self._stop.is_set():
                conn.process_data_events(time_limit=0.05)
        except Exception as exc:  # noqa: BLE001 - reported by the row, which then fails
            self.errors.append(f"recorder: {type(exc).__name__}: {exc}")
            self._ready.set()
        finally:
            with contextlib.suppress(Exception):
                conn.close()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="arrivals", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout=30) or self.errors:
            raise RuntimeError(f"arrival recorder did not start: {self.errors}")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def snapshot(self) -> list[Arrival]:
        with self._lock:
            return list(self.arrivals)


class EventTap:
    """An exclusive queue bound to an events exchange that its service has declared (passive check: the
    bench must not guess the exchange's arguments, e.g. an alternate exchange)."""

    def __init__(self, amqp_url: str, exchange: str, routing_key: str) -> None:
        self._conn = connect(amqp_url)
        try:
            self._channel = self._conn.channel()
            self._channel.exchange_declare(exchange, passive=True)
        except Exception:
            self.close()
            raise
        self.queue = self._channel.queue_declare("", exclusive=True).method.queue
        self._channel.queue_bind(self.queue, exchange, routing_key)

    def collect(self, count: int, timeout: float) -> list[tuple[float, dict[str, Any]]]:
        """(arrival wall time, envelope) of up to `count` events, waiting at most `timeout` s.

        Consumed (pushed by the broker as each event arrives), not polled: a poll every 10 ms added up to
        10 ms to every round's clock, a measurable part of a 2 MB round."""
        found: list[tuple[float, dict[str, Any]]] = []
        deadline = time.monotonic() + timeout
        try:
            for method, _, body in self._channel.consume(self.queue, auto_ack=True, inactivity_timeout=0.5):
                if method is not None and body is not None:
                    found.append((time.time(), json.loads(body.decode("utf-8"))))
                if len(found) >= count or time.monotonic() >= deadline:
                    break
        finally:
            self._channel.cancel()
        return found

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._conn.close()
