"""The event consumer: decides ack / requeue / dead-letter for every message it takes."""

# kombu ships py.typed but leaves most functions unannotated; strict mode would flag every call into it.
# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from kombu.connection import Connection
from kombu.entity import Exchange, Queue
from kombu.messaging import Producer
from kombu.mixins import ConsumerMixin
from kombu.transport.base import Message

from shared import metrics
from shared.envelope import Envelope, MalformedMessage
from shared.health import HEALTH, DependencyHealth
from shared.logs import correlation_scope
from shared.messaging.broker import body_bytes, connect_any, header_int, is_amqp_url, safe_url
from shared.messaging.keepalive import HeartbeatKeeper
from shared.messaging.outages import (
    BROKER,
    Backoff,
    Classifier,
    Pause,
    Probe,
    ProbeRunner,
    classify_failure,
)
from shared.messaging.topology import declare_consumer_queue, quorum_args, retryable_errors
from shared.naming import DEAD_LETTER_EXCHANGE, dlq_name

log = logging.getLogger(__name__)

#: Header the consumer counts deliveries in on transports without quorum queues (memory://).
ATTEMPTS_HEADER = "x-docroute-attempts"
#: Where a message was first published; kept across the memory transport's republish-to-retry.
ORIGIN_EXCHANGE_HEADER = "x-docroute-origin-exchange"
ORIGIN_ROUTING_KEY_HEADER = "x-docroute-origin-routing-key"


class PermanentError(Exception):
    """Raised by a handler for a message that can never succeed; it goes to the dead-letter queue at once."""


@dataclass(frozen=True)
class Subscription:
    """One consumer queue, what it is bound to, and the handler for its events."""

    queue: str
    exchange: str
    routing_key: str
    handler: Callable[[Envelope], None]


class EventConsumer(ConsumerMixin):
    """Consumes envelopes and decides ack / requeue / dead-letter explicitly for every message.

    - handler returns → ack;
    - malformed envelope or PermanentError → dead letter at once (reject without requeue);
    - an exception that says a dependency is unavailable (`classify`, by default `classify_failure`:
      database connection errors, StoreUnavailable, the broker during the handler's own publish,
      DependencyUnavailable) → pause: the message stays unsettled and no other is taken, the consumer
      waits with capped exponential backoff, probes the dependency (`probes[name]`) until it answers, then
      runs the handler again on the same delivery. Nothing is counted against the message, however long
      the outage: every requeue and every closed channel or connection counts toward a quorum queue's
      x-delivery-count (RabbitMQ 3.10), so the message is never given back, and a helper thread keeps the
      connection's heartbeats going meanwhile. If the probe answers at once yet the handler keeps failing
      `max_in_place_retries` times, the failure is the message's own after all (below);
    - any other exception → requeue after a short growing pause, until `delivery_limit` deliveries, then
      dead letter.
    On RabbitMQ the quorum queue counts deliveries and dead-letters; on memory:// the consumer does both
    itself with a header counter and an `x-death` header shaped like RabbitMQ's.
    """

    def __init__(
        self,
        url: str,
        subscriptions: Sequence[Subscription],
        *,
        delivery_limit: int = 5,
        prefetch_count: int = 10,
        retry_delay: float = 0.2,
        probes: Mapping[str, Probe] | None = None,
        classify: Classifier = classify_failure,
        health: DependencyHealth = HEALTH,
        pause_first: float = 0.5,
        pause_cap: float = 10.0,
        probe_timeout: float = 5.0,
        max_in_place_retries: int = 3,
        heartbeat: float = 20.0,
    ) -> None:
        self.url = url
        self.retry_delay = retry_delay
        self.subscriptions = list(subscriptions)
        self.delivery_limit = max(delivery_limit, 1)
        self.prefetch_count = prefetch_count
        self._amqp = is_amqp_url(url)
        self.heartbeat = heartbeat
        self.classify = classify
        self.health = health
        self.pause_first = pause_first
        self.pause_cap = pause_cap
        self.max_in_place_retries = max_in_place_retries
        all_probes = dict(probes or {})
        if self._amqp:
            all_probes.setdefault(BROKER, self._probe_broker)
        self.probes = ProbeRunner(all_probes, timeout=probe_timeout)
        self.connection = self._new_connection()
        self._stop = threading.Event()
        self.ready = threading.Event()
        self._keeper = HeartbeatKeeper(heartbeat)
        self._active: Connection | None = None

    def _probe_broker(self) -> None:
        with Connection(self.url, connect_timeout=5) as conn:
            connect_any(conn)

    def _new_connection(self) -> Connection:
        if self._amqp:
            # read/write timeouts bound the AMQP handshake too: a peer that accepts TCP but never speaks
            # AMQP must not hold the consumer (and its stop) forever.
            return Connection(
                self.url,
                heartbeat=self.heartbeat,
                connect_timeout=5,
                transport_options={"read_timeout": 10, "write_timeout": 10},
            )
        return Connection(self.url)

    @property
    def should_stop(self) -> bool:  # type: ignore[override]
        # ConsumerMixin polls this between drain_events calls; backing it by the Event makes stop prompt.
        return self._stop.is_set()

    def declare(self) -> None:
        """Declare every subscription's queue, dead-letter queue and bindings."""
        with self._new_connection() as conn:
            connect_any(conn)
            for sub in self.subscriptions:
                declare_consumer_queue(
                    conn, sub.queue, sub.exchange, sub.routing_key, delivery_limit=self.delivery_limit
                )

    def get_consumers(self, consumer_cls: Any, channel: Any) -> list[Any]:
        consumers = []
        for sub in self.subscriptions:
            queue = Queue(
                sub.queue,
                exchange=Exchange(sub.exchange, type="topic", durable=True),
                routing_key=sub.routing_key,
                durable=True,
                queue_arguments=quorum_args(self.connection, sub.queue, self.delivery_limit),
                # declare() already did it, with the dead-letter queue; don't redo it per reconnect.
                no_declare=True,
            )
            consumers.append(
                consumer_cls(
                    queues=[queue],
                    on_message=self._make_callback(sub),
                    prefetch_count=self.prefetch_count,
                )
            )
        return consumers

    def on_consume_ready(self, connection: Any, channel: Any, consumers: Any, **kwargs: Any) -> None:
        self._active = connection  # the clone ConsumerMixin consumes on; the keeper beats on it
        self.ready.set()

    @contextmanager
    def establish_connection(self) -> Iterator[Connection]:
        # kombu's version retries forever inside ensure_connection and would not notice `stop`;
        # run() below owns the retry loop instead.
        with self.create_connection() as conn:
            connect_any(conn)
            yield conn

    def run(self, stop: threading.Event | None = None, _tokens: int = 1, **kwargs: Any) -> None:  # type: ignore[override]
        """Consume until `stop` is set; survives broker outages (logs, backs off, reconnects)."""
        self._stop = stop if stop is not None else threading.Event()
        self.declare_with_retry()
        backoff = 0.2
        try:
            while not self._stop.is_set():
                try:
                    super().run(_tokens, safety_interval=0.2)
                    backoff = 0.2
                except Exception:
                    log.exception(
                        "consumer lost its broker connection; reconnecting", extra={"url": safe_url(self.url)}
                    )
                    self.ready.clear()
                    self._stop.wait(backoff)
                    backoff = min(backoff * 2, 5.0)
        finally:
            self._keeper.close()

    def declare_with_retry(self) -> None:
        backoff = 0.2
        while not self._stop.is_set():
            try:
                self.declare()
                return
            except retryable_errors():
                log.exception("declaring consumer queues failed; retrying", extra={"url": safe_url(self.url)})
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)

    def _make_callback(self, sub: Subscription) -> Callable[[Message], None]:
        def on_message(message: Message) -> None:
            self._handle(sub, message)

        return on_message

    def _handle(self, sub: Subscription, message: Message) -> None:
        headers = dict(message.headers or {})
        try:
            envelope = Envelope.from_bytes(body_bytes(message))
        except MalformedMessage as exc:
            log.error(
                "malformed message dead-lettered",
                extra={
                    "queue": sub.queue,
                    "error": str(exc),
                    "correlation_id": headers.get("correlation_id"),
                },
            )
            self._dead_letter(sub, message, "rejected")
            return
        with correlation_scope(envelope.correlation_id), self._keeper.busy(self._active):
            pause: Pause | None = None
            outcome = "stopped while paused"
            try:
                while True:
                    try:
                        sub.handler(envelope)
                    except PermanentError as exc:
                        outcome = "the handler failed permanently"
                        log.error(
                            "handler failed permanently; message dead-lettered",
                            extra={"queue": sub.queue, "message_id": envelope.id, "error": str(exc)},
                        )
                        self._dead_letter(sub, message, "rejected")
                        return
                    except Exception as exc:  # noqa: BLE001 - not swallowed: paused on, retried or dead-lettered
                        pause = self._wait_out(sub, pause, exc)
                        if pause is None:
                            self._retry(sub, message, envelope, exc)
                            return
                        if self._stop.is_set():
                            # Given back now (one delivery counted) rather than held by a consumer that is
                            # going away; memory:// would not restore it on close.
                            with self._keeper.exclusive():
                                message.requeue()
                            return
                    else:
                        outcome = "the handler succeeded"
                        with self._keeper.exclusive():
                            message.ack()
                        metrics.EVENTS_CONSUMED.labels(sub.queue).inc()
                        return
            finally:
                if pause is not None:
                    pause.end(outcome)

    def _wait_out(self, sub: Subscription, pause: Pause | None, exc: Exception) -> Pause | None:
        """Pause on a dependency failure until the dependency answers (or stop); None: the message's own.

        Returns the pause going on (begun here for the first failure) so the caller retries the handler in
        place; None once the failure is counted against the message (not a dependency, or a dependency
        that answers its probe at once `max_in_place_retries` times in a row while the handler still fails).
        """
        dependency = self.classify(exc)
        if dependency is None:
            return self._end(pause, "the handler failed on its own")
        if pause is not None and pause.dependency != dependency:
            pause.end(f"{dependency} failed next")
            pause = None
        if pause is None:
            pause = Pause(
                sub.queue,
                dependency,
                reporter=self,
                health=self.health,
                backoff=Backoff(self.pause_first, self.pause_cap),
            )
            pause.begin(exc)
        if self._stop.wait(pause.backoff.next()) or not self.probes.has_probe(dependency):
            return pause  # without a probe, the handler's next attempt is the probe
        answered_at_once = True
        while not self.probes.answers(dependency, self._stop):
            answered_at_once = False
            if self._stop.wait(pause.backoff.next()):
                return pause
        if not answered_at_once:
            pause.answered_at_once = 0
            pause.backoff.reset()  # it is back: a failure right after recovery waits the shortest pause
            return pause
        pause.answered_at_once += 1
        if pause.answered_at_once >= self.max_in_place_retries:
            log.warning(
                "%s answers its probe but the handler keeps failing; counted against the message",
                dependency,
                extra={"queue": sub.queue, "dependency": dependency, "error": repr(exc)[:500]},
            )
            return self._end(pause, "the handler keeps failing while the dependency answers")
        return pause

    @staticmethod
    def _end(pause: Pause | None, outcome: str) -> None:
        if pause is not None:
            pause.end(outcome)

    def _deliveries(self, message: Message) -> int:
        headers = message.headers or {}
        if self._amqp:
            # Quorum queues count returns in x-delivery-count (absent on the first delivery).
            return header_int(headers, "x-delivery-count") + 1
        return header_int(headers, ATTEMPTS_HEADER) + 1

    def _retry(self, sub: Subscription, message: Message, envelope: Envelope, exc: Exception) -> None:
        deliveries = self._deliveries(message)
        last = deliveries >= self.delivery_limit
        log.warning(
            "handler failed; %s",
            "delivery limit reached, dead-lettering" if last else "requeued",
            exc_info=exc,
            extra={"queue": sub.queue, "message_id": envelope.id, "delivery": deliveries},
        )
        if last:
            metrics.EVENTS_DEAD_LETTERED.labels(sub.queue, "delivery_limit").inc()
            if self._amqp:
                # The quorum queue itself dead-letters once the limit is exceeded.
                with self._keeper.exclusive():
                    message.requeue()
            else:
                self._memory_dead_letter(sub, message, "delivery_limit")
            return
        metrics.EVENTS_RETRIED.labels(sub.queue).inc()
        # Without a pause a broker redelivers at once and a short outage (database restart) would burn
        # through every delivery in milliseconds; the pause grows per delivery and ends early on stop.
        self._stop.wait(min(self.retry_delay * 2 ** (deliveries - 1), 5.0))
        if self._amqp:
            with self._keeper.exclusive():
                message.requeue()
            return
        headers = dict(message.headers or {})
        exchange, routing_key = self._origin(sub, message)
        headers.update(
            {
                ATTEMPTS_HEADER: deliveries,
                ORIGIN_EXCHANGE_HEADER: exchange,
                ORIGIN_ROUTING_KEY_HEADER: routing_key,
            }
        )
        # Straight back to this queue only (default exchange), not to every queue bound to the topic.
        self._republish(message, "", sub.queue, headers)
        with self._keeper.exclusive():
            message.ack()

    @staticmethod
    def _origin(sub: Subscription, message: Message) -> tuple[str, str]:
        headers = message.headers or {}
        info = message.delivery_info or {}
        exchange = headers.get(ORIGIN_EXCHANGE_HEADER) or info.get("exchange") or sub.exchange
        routing_key = headers.get(ORIGIN_ROUTING_KEY_HEADER) or info.get("routing_key") or sub.routing_key
        return str(exchange), str(routing_key)

    def _dead_letter(self, sub: Subscription, message: Message, reason: str) -> None:
        metrics.EVENTS_DEAD_LETTERED.labels(sub.queue, reason).inc()
        if self._amqp:
            with self._keeper.exclusive():
                message.reject(requeue=False)
        else:
            self._memory_dead_letter(sub, message, reason)

    def _memory_dead_letter(self, sub: Subscription, message: Message, reason: str) -> None:
        exchange, routing_key = self._origin(sub, message)
        headers = {k: v for k, v in (message.headers or {}).items() if not k.startswith("x-docroute-")}
        death = {
            "queue": sub.queue,
            "reason": reason,
            "exchange": exchange,
            "routing-keys": [routing_key],
            "count": 1,
            "time": time.time(),
        }
        headers["x-death"] = [death, *headers.get("x-death", [])]
        self._republish(message, DEAD_LETTER_EXCHANGE, dlq_name(sub.queue), headers)
        with self._keeper.exclusive():
            message.ack()

    @staticmethod
    def _republish(message: Message, exchange: str, routing_key: str, headers: dict[str, Any]) -> None:
        props = message.properties or {}
        Producer(message.channel).publish(
            body_bytes(message),
            exchange=exchange,
            routing_key=routing_key,
            headers=headers,
            content_type=message.content_type,
            content_encoding=message.content_encoding or "utf-8",
            delivery_mode=2,
            retry=False,
            **{k: props[k] for k in ("message_id", "correlation_id") if props.get(k)},
        )
