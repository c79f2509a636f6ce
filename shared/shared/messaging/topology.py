"""Broker topology: events exchanges (with their unrouted queue), consumer and unit queues, DLQs."""

# kombu ships py.typed but leaves most functions unannotated; strict mode would flag every call into it.
# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import amqp.exceptions
from kombu.connection import Connection
from kombu.entity import Exchange, Queue

from shared import naming
from shared.messaging.broker import connect_any, connection_errors, open_channel
from shared.naming import (
    DEAD_LETTER_EXCHANGE,
    PRODUCERS,
    SUBSCRIPTIONS,
    TASKS_EXCHANGE,
    dlq_name,
    events_exchange,
    is_events_exchange,
    queue_name,
    replay_exchange,
    unit_queue,
    unrouted_name,
)

log = logging.getLogger(__name__)


class TopologyNotReady(Exception):
    """A name this service needs, but whose broker user may not declare it, does not exist yet.

    Each service's broker user may declare only its own exchanges and queues; another service's (or the
    deployment's) declaration creates the rest. Callers retry until it exists.
    """


def retryable_errors() -> tuple[type[BaseException], ...]:
    """What a start-up declaration waits out: the broker away, or a name its owner has not declared yet."""
    return (*connection_errors(), TopologyNotReady)


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


def _declare_or_check(conn: Connection, kind: str, name: str, declare: Callable[[Any], None]) -> None:
    """Declare `name` (an exchange or a queue) with `declare`; if this broker user may not, check it exists.

    A service's broker user holds configure rights on its own names only (deploy/k8s rabbitmq.yaml). What
    it needs of another service's (the exchange it consumes from, the queues its events go to) is declared
    by that service or by the deployment; here it only waits for it to exist (a passive declare needs no
    rights). Raises TopologyNotReady while it does not.
    """
    try:
        with open_channel(conn) as channel:
            declare(channel)
        return
    except amqp.exceptions.AccessRefused:
        log.debug("may not declare %s %s; checking that it exists", kind, name)
    try:
        with open_channel(conn) as channel:
            if kind == "exchange":
                channel.exchange_declare(exchange=name, type="topic", passive=True)
            else:
                channel.queue_declare(queue=name, passive=True)
    except amqp.exceptions.NotFound:
        raise TopologyNotReady(
            f"{kind} {name} does not exist yet (its owner declares it; this broker user may not)"
        ) from None


def _topic_exchange(conn: Connection, name: str) -> Exchange:
    """Declare a topic exchange; an events exchange gets its alternate exchange and unrouted queue.

    Events are published `mandatory`, so an event no queue is bound for would come back and stall the
    outbox behind it. RabbitMQ hands such events to the alternate exchange instead, whose queue keeps
    them for an operator (bounded in length), and the publish counts as routed.
    """
    arguments: dict[str, Any] | None = None
    if is_events_exchange(name) and conn.transport.driver_type == "amqp":
        arguments = {"alternate-exchange": unrouted_name(name)}

    def declare(channel: Any) -> None:
        if arguments is not None:
            unrouted = unrouted_name(name)
            fallback = Exchange(unrouted, type="fanout", durable=True)
            fallback(channel).declare()
            keep = {"x-queue-type": "quorum", "x-max-length": UNROUTED_MAX_LENGTH, "x-overflow": "drop-head"}
            Queue(unrouted, exchange=fallback, durable=True, queue_arguments=keep)(channel).declare()
        Exchange(name, type="topic", durable=True, arguments=arguments)(channel).declare()

    _declare_or_check(conn, "exchange", name, declare)
    # Whoever binds to it next only asserts that it exists: binding needs no configure right on it.
    return Exchange(name, type="topic", durable=True, arguments=arguments, passive=True)


def declare_events_exchange(conn: Connection, service: str) -> Exchange:
    """Declare the durable topic exchange `<service>.events` (with its alternate exchange)."""
    return _topic_exchange(conn, events_exchange(service))


def declare_topology(conn: Connection, *, delivery_limit: int = 5, service: str | None = None) -> None:
    """Declare the events exchanges and consumer queues of the system (idempotent).

    Every worker calls it before its first publish, so that no start-up order can publish an event
    before the queues that must receive it exist. With `service`, only what that service takes part in:
    its own events exchange, the queues it consumes, and the queues its events go to; under a per-service
    broker user the names it may not declare are waited for (TopologyNotReady) instead.
    """
    for producer in PRODUCERS:
        if service is None or producer == service:
            declare_events_exchange(conn, producer)
    for consumer, source, event, version in SUBSCRIPTIONS:
        if service is not None and service not in (consumer, source):
            continue
        declare_consumer_queue(
            conn,
            queue_name(consumer, source, event),
            events_exchange(source),
            naming.routing_key(source, event, version),
            delivery_limit=delivery_limit,
        )


def wait_for_topology(
    url: str,
    stop: threading.Event,
    *,
    delivery_limit: int,
    timeout: float = 5.0,
    max_backoff: float = 5.0,
    service: str | None = None,
) -> bool:
    """Declare the topology, retrying with backoff while the broker (or a name we need) is away; False if
    stopped first."""
    backoff = 0.2
    while not stop.is_set():
        try:
            with Connection(url, connect_timeout=timeout) as conn:
                connect_any(conn)
                declare_topology(conn, delivery_limit=delivery_limit, service=service)
            return True
        except retryable_errors() as exc:
            log.warning("cannot declare the broker topology yet (%s); retrying in %.1fs", exc, backoff)
            stop.wait(backoff)
            backoff = min(backoff * 2, max_backoff)
    return False


def _declare_dead_letter(conn: Connection, queue: str) -> Exchange:
    """Ensure docroute.dlx and the `<queue>.dlq` bound to it; the passive reference to docroute.dlx."""

    def declare_dlx(channel: Any) -> None:
        Exchange(DEAD_LETTER_EXCHANGE, type="direct", durable=True)(channel).declare()

    _declare_or_check(conn, "exchange", DEAD_LETTER_EXCHANGE, declare_dlx)
    dlx = Exchange(DEAD_LETTER_EXCHANGE, type="direct", durable=True, passive=True)
    quorum = {"x-queue-type": "quorum"} if conn.transport.driver_type == "amqp" else None
    dlq = Queue(
        dlq_name(queue), exchange=dlx, routing_key=dlq_name(queue), durable=True, queue_arguments=quorum
    )
    _declare_or_check(conn, "queue", dlq.name, lambda channel: dlq(channel).declare())
    return dlx


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
    _declare_dead_letter(conn, queue)

    def declare(channel: Any) -> None:
        declared(channel).declare()
        # Its owner replays its dead letters through its own replay exchange, to this queue only.
        replay = Exchange(replay_exchange(queue), type="direct", durable=True)
        replay(channel).declare()
        channel.queue_bind(queue=queue, exchange=replay.name, routing_key=queue)

    _declare_or_check(conn, "queue", queue, declare)
    return Queue(
        queue,
        exchange=Exchange(exchange.name, type=exchange.type, durable=True, passive=True),
        routing_key=routing_key,
        durable=True,
        queue_arguments=quorum_args(conn, queue, delivery_limit),
    )


def declare_consumer_queue(
    conn: Connection, queue: str, exchange: str, routing_key: str, *, delivery_limit: int = 5
) -> Queue:
    """Declare `queue` (quorum, at most `delivery_limit` deliveries) bound to the topic `exchange`.

    It dead-letters to DEAD_LETTER_EXCHANGE with routing key `<queue>.dlq`, where `<queue>.dlq` is bound,
    and is bound to its owner's replay exchange with its own name as key. The exchange is declared too
    (idempotent; only checked when this broker user may not declare it), so a consumer may start before
    the producer.
    """
    topic = _topic_exchange(conn, exchange)
    return _declare_queue(conn, queue, topic, routing_key, delivery_limit)


def declare_unit_queue(conn: Connection, code: str, *, delivery_limit: int = 5) -> Queue:
    """Declare the task queue `routing.tasks.<code>`, bound to the direct `routing.tasks` by `code`."""
    direct = Exchange(TASKS_EXCHANGE, type="direct", durable=True)
    with open_channel(conn) as channel:
        direct(channel).declare()
    return _declare_queue(conn, unit_queue(code), direct, code, delivery_limit)
