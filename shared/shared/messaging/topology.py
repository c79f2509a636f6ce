"""Broker topology: events exchanges (with their unrouted queue), consumer and unit queues, DLQs."""

# kombu ships py.typed but leaves most functions unannotated; strict mode would flag every call into it.
# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

import logging
import threading
from typing import Any

from kombu.connection import Connection
from kombu.entity import Exchange, Queue

from shared import naming
from shared.messaging.broker import connection_errors, open_channel
from shared.naming import (
    DEAD_LETTER_EXCHANGE,
    PRODUCERS,
    SUBSCRIPTIONS,
    TASKS_EXCHANGE,
    dlq_name,
    events_exchange,
    is_events_exchange,
    queue_name,
    unit_queue,
    unrouted_name,
)

log = logging.getLogger(__name__)

#: How many unrouted events an events exchange's alternate queue keeps (the oldest are dropped first).
UNROUTED_MAX_LENGTH = 100_000


def quorum_args(conn: Connection, queue: str, delivery_limit: int) -> dict[str, Any] | None:
    if conn.transport.driver_type != "amqp":
        return None
    # delivery_limit counts deliveries; RabbitMQ's x-delivery-limit counts returns (deliveries - 1).
    return {
        "x-queue-type": "quorum",
        "x-delivery-limit": max(delivery_limit - 1, 0),
        "x-dead-letter-exchange": DEAD_LETTER_EXCHANGE,
        "x-dead-letter-routing-key": dlq_name(queue),
    }


def _topic_exchange(conn: Connection, name: str) -> Exchange:
    """Declare a topic exchange; an events exchange gets its alternate exchange and unrouted queue.

    Events are published `mandatory`, so an event no queue is bound for would come back and stall the
    outbox behind it. RabbitMQ hands such events to the alternate exchange instead, whose queue keeps
    them for an operator (bounded in length), and the publish counts as routed.
    """
    arguments: dict[str, Any] | None = None
    with open_channel(conn) as channel:
        if is_events_exchange(name) and conn.transport.driver_type == "amqp":
            unrouted = unrouted_name(name)
            fallback = Exchange(unrouted, type="fanout", durable=True)
            fallback(channel).declare()
            keep = {"x-queue-type": "quorum", "x-max-length": UNROUTED_MAX_LENGTH, "x-overflow": "drop-head"}
            Queue(unrouted, exchange=fallback, durable=True, queue_arguments=keep)(channel).declare()
            arguments = {"alternate-exchange": unrouted}
        exchange = Exchange(name, type="topic", durable=True, arguments=arguments)
        exchange(channel).declare()
    return exchange


def declare_events_exchange(conn: Connection, service: str) -> Exchange:
    """Declare the durable topic exchange `<service>.events` (with its alternate exchange)."""
    return _topic_exchange(conn, events_exchange(service))


def declare_topology(conn: Connection, *, delivery_limit: int = 5) -> None:
    """Declare every events exchange and every consumer queue of the system (idempotent).

    Every worker calls it before its first publish, so that no start-up order can publish an event
    before the queues that must receive it exist.
    """
    for service in PRODUCERS:
        declare_events_exchange(conn, service)
    for consumer, source, event, version in SUBSCRIPTIONS:
        declare_consumer_queue(
            conn,
            queue_name(consumer, source, event),
            events_exchange(source),
            naming.routing_key(source, event, version),
            delivery_limit=delivery_limit,
        )


def wait_for_topology(
    url: str, stop: threading.Event, *, delivery_limit: int, timeout: float = 5.0, max_backoff: float = 5.0
) -> bool:
    """Declare the topology, retrying with backoff while the broker is away; False if stopped first."""
    backoff = 0.2
    while not stop.is_set():
        try:
            with Connection(url, connect_timeout=timeout) as conn:
                declare_topology(conn, delivery_limit=delivery_limit)
            return True
        except connection_errors() as exc:
            log.warning("cannot declare the broker topology yet (%s); retrying in %.1fs", exc, backoff)
            stop.wait(backoff)
            backoff = min(backoff * 2, max_backoff)
    return False


def _declare_dead_letter(channel: Any, conn: Connection, queue: str) -> None:
    dlx = Exchange(DEAD_LETTER_EXCHANGE, type="direct", durable=True)
    dlx(channel).declare()
    quorum = {"x-queue-type": "quorum"} if conn.transport.driver_type == "amqp" else None
    dlq = Queue(
        dlq_name(queue), exchange=dlx, routing_key=dlq_name(queue), durable=True, queue_arguments=quorum
    )
    dlq(channel).declare()


def _declare_queue(
    conn: Connection, queue: str, exchange: Exchange, routing_key: str, delivery_limit: int
) -> Queue:
    declared = Queue(
        queue,
        exchange=exchange,
        routing_key=routing_key,
        durable=True,
        queue_arguments=quorum_args(conn, queue, delivery_limit),
    )
    with open_channel(conn) as channel:
        _declare_dead_letter(channel, conn, queue)
        declared(channel).declare()
    return declared


def declare_consumer_queue(
    conn: Connection, queue: str, exchange: str, routing_key: str, *, delivery_limit: int = 5
) -> Queue:
    """Declare `queue` (quorum, at most `delivery_limit` deliveries) bound to the topic `exchange`.

    It dead-letters to DEAD_LETTER_EXCHANGE with routing key `<queue>.dlq`, where `<queue>.dlq` is bound.
    The exchange is declared too (idempotent), so a consumer may start before the producer.
    """
    topic = _topic_exchange(conn, exchange)
    return _declare_queue(conn, queue, topic, routing_key, delivery_limit)


def declare_unit_queue(conn: Connection, code: str, *, delivery_limit: int = 5) -> Queue:
    """Declare the task queue `routing.tasks.<code>`, bound to the direct `routing.tasks` by `code`."""
    direct = Exchange(TASKS_EXCHANGE, type="direct", durable=True)
    with open_channel(conn) as channel:
        direct(channel).declare()
    return _declare_queue(conn, unit_queue(code), direct, code, delivery_limit)
