"""kombu messaging: topology, a confirming publisher, an ack/reject/dead-letter consumer base, DLQ tools."""

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
from urllib.parse import urlsplit

import amqp.exceptions
from kombu.connection import Connection
from kombu.entity import Exchange, Queue
from kombu.exceptions import KombuError
from kombu.messaging import Producer
from kombu.mixins import ConsumerMixin
from kombu.transport.base import Message

from shared import metrics, naming
from shared.envelope import Envelope, MalformedMessage
from shared.logs import correlation_scope, current_correlation_id
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

#: Header the consumer counts deliveries in on transports without quorum queues (memory://).
ATTEMPTS_HEADER = "x-docroute-attempts"
#: How many unrouted events an events exchange's alternate queue keeps (the oldest are dropped first).
UNROUTED_MAX_LENGTH = 100_000
#: Headers the broker adds when dead-lettering; dropped when a message is replayed.
_DEATH_HEADERS = ("x-death", "x-first-death-", "x-last-death-", "x-delivery-count", "x-docroute-")
#: Where a message was first published; kept across the memory transport's republish-to-retry.
ORIGIN_EXCHANGE_HEADER = "x-docroute-origin-exchange"
ORIGIN_ROUTING_KEY_HEADER = "x-docroute-origin-routing-key"


class PublishError(Exception):
    """The broker did not confirm the message within the retry budget."""


class Unroutable(PublishError):
    """The broker confirmed but returned the message: no queue is bound for its routing key."""


class PermanentError(Exception):
    """Raised by a handler for a message that can never succeed; it goes to the dead-letter queue at once."""


def connect_any(conn: Connection) -> None:
    """Connect to the first node of `conn` that answers, one attempt each, without sleeping in between.

    A `;`-separated URL (`amqp://node1/vh;amqp://node2/vh`) lists a cluster's nodes; kombu moves to the next
    only on a retry, so a single attempt (`max_retries=0`) would try the first node alone forever."""
    conn.ensure_connection(
        max_retries=max(len(conn.alt), 1) - 1, interval_start=0, interval_step=0, interval_max=0
    )


def is_amqp_url(url: str) -> bool:
    """True for a real AMQP broker (quorum queues, confirms, dead-lettering); False for memory:// etc."""
    return urlsplit(url).scheme in {"amqp", "amqps", "pyamqp"}


def _connection_errors() -> tuple[type[BaseException], ...]:
    return (
        OSError,  # includes socket.timeout and ConnectionRefusedError
        KombuError,
        amqp.exceptions.AMQPError,  # includes MessageNacked and channel/connection errors
    )


# --------------------------------------------------------------------------------------------- topology


def _quorum_args(conn: Connection, queue: str, delivery_limit: int) -> dict[str, Any] | None:
    if conn.transport.driver_type != "amqp":
        return None
    # delivery_limit counts deliveries; RabbitMQ's x-delivery-limit counts returns (deliveries - 1).
    return {
        "x-queue-type": "quorum",
        "x-delivery-limit": max(delivery_limit - 1, 0),
        "x-dead-letter-exchange": DEAD_LETTER_EXCHANGE,
        "x-dead-letter-routing-key": dlq_name(queue),
    }


@contextmanager
def _channel(conn: Connection) -> Iterator[Any]:
    channel = conn.channel()
    try:
        yield channel
    finally:
        channel.close()


def _topic_exchange(conn: Connection, name: str) -> Exchange:
    """Declare a topic exchange; an events exchange gets its alternate exchange and unrouted queue.

    Events are published `mandatory`, so an event no queue is bound for would come back and stall the
    outbox behind it. RabbitMQ hands such events to the alternate exchange instead, whose queue keeps
    them for an operator (bounded in length), and the publish counts as routed.
    """
    arguments: dict[str, Any] | None = None
    with _channel(conn) as channel:
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
                connect_any(conn)
                declare_topology(conn, delivery_limit=delivery_limit)
            return True
        except _connection_errors() as exc:
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
        queue_arguments=_quorum_args(conn, queue, delivery_limit),
    )
    with _channel(conn) as channel:
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
    with _channel(conn) as channel:
        direct(channel).declare()
    return _declare_queue(conn, unit_queue(code), direct, code, delivery_limit)


# -------------------------------------------------------------------------------------------- publisher


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """One message for `Publisher.publish_batch` (the same fields as `Publisher.publish` takes)."""

    exchange: str
    routing_key: str
    body: bytes
    message_id: str
    headers: Mapping[str, Any] | None = None
    content_type: str = "application/json"


@dataclass(frozen=True, slots=True)
class BatchResult:
    """How far a batch got: messages `[0, confirmed)` are confirmed; `error` is why message `confirmed`
    was not (None when every message was confirmed)."""

    confirmed: int
    error: PublishError | None = None


class _Confirms:
    """Confirms and returns of one batch, fed by the channel's basic.ack/nack/return callbacks.

    Indexes are positions in the batch; delivery tags are per channel, so a new attempt (possibly on a new
    channel) starts a new tag → index map while what was confirmed before stays confirmed.
    """

    def __init__(self) -> None:
        self.confirmed: set[int] = set()
        self.returned: dict[int, str] = {}
        self.nacked: set[int] = set()
        self.in_flight: dict[int, int] = {}  # delivery tag -> index, in publish (= tag) order
        self.by_message_id: dict[str, int] = {}

    def new_attempt(self) -> None:
        self.in_flight.clear()
        self.by_message_id.clear()
        self.nacked.clear()  # a nacked message is sent again by the next attempt

    def sent(self, tag: int, index: int, message_id: str) -> None:
        self.in_flight[tag] = index
        self.by_message_id[message_id] = index

    def settle(self, delivery_tag: int, multiple: bool, into: set[int]) -> None:
        # `multiple` settles every outstanding tag up to and including delivery_tag.
        tags = [t for t in self.in_flight if t <= delivery_tag] if multiple else [delivery_tag]
        for tag in tags:
            index = self.in_flight.pop(tag, None)
            if index is not None:
                into.add(index)

    def first_failure(self) -> int | None:
        failed = self.nacked | self.returned.keys()
        return min(failed) if failed else None

    def prefix(self, start: int, end: int) -> int:
        """The first index from `start` that is not confirmed (or was returned/nacked)."""
        i = start
        while i < end and i in self.confirmed and i not in self.returned and i not in self.nacked:
            i += 1
        return i

    def settled(self, start: int, end: int) -> bool:
        """True once every message before the first failure (or `end`) has its confirm."""
        failure = self.first_failure()
        limit = end if failure is None else min(failure, end)
        return all(i in self.confirmed for i in range(start, limit))


class Publisher:
    """Publishes with publisher confirms and `mandatory`; bounded in time, so it can never hang a request.

    `publish_batch` pipelines: it sends a whole batch, then waits once for the broker's confirms (one
    round trip per batch instead of one per message). Thread-safe (one lock around one connection). On
    memory:// there are no confirms; unroutable messages are detected by looking up the exchange's bindings
    instead.
    """

    def __init__(self, url: str, *, confirm_timeout: float = 5.0, retries: int = 3) -> None:
        self.url = url
        self.confirm_timeout = confirm_timeout
        self.retries = retries
        self._amqp = is_amqp_url(url)
        self._lock = threading.Lock()
        self._conn: Connection | None = None
        self._channel: Any = None
        self._next_tag = 1
        self._confirms: _Confirms | None = None

    def _connect(self, timeout: float) -> Any:
        if self._conn is not None and self._channel is not None:
            return self._channel
        if self._amqp:
            conn = Connection(
                self.url,
                connect_timeout=timeout,
                transport_options={
                    # A broker that blocks publishers (resource alarm) must not stall a socket write forever.
                    "read_timeout": self.confirm_timeout,
                    "write_timeout": self.confirm_timeout,
                },
            )
        else:
            conn = Connection(self.url)
        try:
            # One attempt per node: kombu's retry loop sleeps 2 s between tries and would break our deadline.
            connect_any(conn)
            channel = conn.channel()
            if self._amqp:
                # Confirm mode is driven here, not by kombu's confirm_publish (which waits after every
                # message): delivery tags count publishes on this channel from 1.
                channel.confirm_select()
                channel.events["basic_ack"].add(self._on_ack)
                channel.events["basic_nack"].add(self._on_nack)
                channel.events["basic_return"].add(self._on_return)
        except BaseException:
            conn.collect()  # no close handshake with a broker that just failed us
            raise
        self._conn, self._channel, self._next_tag = conn, channel, 1
        return channel

    # The callbacks run inside basic_publish / drain_events, i.e. on the thread holding self._lock.
    def _on_ack(self, delivery_tag: int, multiple: bool) -> None:
        if self._confirms is not None:
            self._confirms.settle(delivery_tag, multiple, self._confirms.confirmed)

    def _on_nack(self, delivery_tag: int, multiple: bool) -> None:
        if self._confirms is not None:
            self._confirms.settle(delivery_tag, multiple, self._confirms.nacked)

    def _on_return(self, exc: Exception, exchange: str, routing_key: str, message: Any) -> None:
        # basic.return carries no delivery tag: the message id tells which message came back. RabbitMQ
        # sends it before that message's basic.ack.
        message_id = (getattr(message, "properties", None) or {}).get("message_id")
        confirms = self._confirms
        index = confirms.by_message_id.get(message_id) if confirms is not None and message_id else None
        if confirms is None or index is None:
            # A message sent after a failed one of an earlier batch: it is sent again anyway.
            log.debug("broker returned a message no longer in flight", extra={"message_id": message_id})
            return
        confirms.returned[index] = (
            f"broker returned the message: {exchange!r} routing key {routing_key!r}: {exc}"
        )

    def _discard(self, *, graceful: bool = False) -> None:
        conn, self._conn, self._channel = self._conn, None, None
        if conn is None:
            return
        try:
            if graceful:
                conn.release()
            else:
                # A broken or silent broker would never answer the AMQP close handshake: drop the socket.
                conn.collect()
        except Exception:  # the connection is dropped either way
            log.debug("closing a broken broker connection failed", exc_info=True)

    def _check_routable_in_memory(self, channel: Any, exchange: str, routing_key: str) -> None:
        # Events exchanges have an alternate exchange on RabbitMQ, so an event nobody subscribes to is
        # routed there; the memory transport has none, and such an event is simply not kept.
        if not exchange or is_events_exchange(exchange):
            return
        try:
            queues = channel.typeof(exchange).lookup(channel.get_table(exchange), exchange, routing_key, None)
        except KeyError:
            queues = []
        if not queues:
            raise Unroutable(f"no queue bound to {exchange!r} for routing key {routing_key!r}")

    def publish(
        self,
        *,
        exchange: str,
        routing_key: str,
        body: bytes,
        message_id: str,
        headers: Mapping[str, Any] | None = None,
        content_type: str = "application/json",
    ) -> None:
        """Publish one persistent message and wait for the broker's confirm.

        Raises Unroutable when no queue takes it, PublishError when the broker is unreachable or does not
        confirm; the whole call stays within about confirm_timeout * (retries + 1) seconds.
        """
        message = OutgoingMessage(exchange, routing_key, body, message_id, headers, content_type)
        result = self.publish_batch([message])
        if result.error is not None:
            raise result.error

    def publish_batch(self, messages: Sequence[OutgoingMessage]) -> BatchResult:
        """Publish `messages` in order with pipelined confirms; report how many were confirmed in order.

        Never raises for a message: the first message that is returned (Unroutable) or not confirmed within
        the retry budget (PublishError) ends the batch, and messages after it are not counted as confirmed
        even if the broker took them (they were already on the wire; a caller sends them again, after the
        failed one). The whole call stays within about confirm_timeout * (retries + 1) seconds.
        """
        prepared = [self._with_correlation_id(m) for m in messages]
        deadline = time.monotonic() + self.confirm_timeout * (self.retries + 1)
        confirms = _Confirms()
        last_error: BaseException | None = None
        pipelined = True
        attempt = 0
        done = 0
        with self._lock:
            while done < len(prepared) and attempt <= self.retries:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                end = len(prepared) if pipelined else done + 1
                try:
                    if self._amqp:
                        self._send_amqp(prepared, done, end, min(self.confirm_timeout, remaining), confirms)
                    else:
                        self._send_memory(prepared, done, end, confirms)
                except amqp.exceptions.NotFound as exc:
                    # A missing exchange closes the channel, and which message named it is unknown when
                    # several were in flight: go again one message at a time to pin it down.
                    self._discard()
                    if end - done > 1:
                        done = confirms.prefix(done, len(prepared))
                        pipelined = False
                        continue
                    missing = Unroutable(f"exchange {prepared[done].exchange!r} does not exist: {exc}")
                    return self._finish(prepared, done, missing)
                except (*_connection_errors(), amqp.exceptions.MessageNacked) as exc:
                    last_error = exc
                    self._discard()
                    done = confirms.prefix(done, len(prepared))
                    failed = prepared[min(done, len(prepared) - 1)]
                    log.warning(
                        "publish attempt failed",
                        extra={
                            "exchange": failed.exchange,
                            "routing_key": failed.routing_key,
                            "attempt": attempt + 1,
                            "error": repr(exc),
                        },
                    )
                    attempt += 1
                    # Short, growing pauses: a broker restart is often over within a second.
                    pause = min(0.1 * 2 ** (attempt - 1), 1.0, max(deadline - time.monotonic(), 0))
                    time.sleep(pause)
                    continue
                done = confirms.prefix(done, len(prepared))
                if done in confirms.returned:
                    return self._finish(prepared, done, Unroutable(confirms.returned[done]))
            if done >= len(prepared):
                return self._finish(prepared, done, None)
            failed = prepared[done]
            error = PublishError(
                f"broker did not confirm message {failed.message_id} to {failed.exchange!r}/"
                f"{failed.routing_key!r}: {last_error!r}"
            )
            error.__cause__ = last_error
            return self._finish(prepared, done, error)

    @staticmethod
    def _with_correlation_id(message: OutgoingMessage) -> OutgoingMessage:
        headers = dict(message.headers or {})
        correlation_id = headers.get("correlation_id") or current_correlation_id()
        if correlation_id:
            headers["correlation_id"] = correlation_id
        return OutgoingMessage(
            message.exchange,
            message.routing_key,
            message.body,
            message.message_id,
            headers,
            message.content_type,
        )

    @staticmethod
    def _finish(
        messages: Sequence[OutgoingMessage], confirmed: int, error: PublishError | None
    ) -> BatchResult:
        for message in messages[:confirmed]:
            metrics.EVENTS_PUBLISHED.labels(message.exchange).inc()
        if error is not None:
            reason = "unroutable" if isinstance(error, Unroutable) else "unconfirmed"
            metrics.PUBLISH_FAILURES.labels(messages[confirmed].exchange, reason).inc()
        return BatchResult(confirmed, error)

    def _send_amqp(
        self, messages: Sequence[OutgoingMessage], start: int, end: int, timeout: float, confirms: _Confirms
    ) -> None:
        """Send messages[start:end], then wait (up to `timeout`) until the broker settled them.

        The whole range goes out before anything is read back, so a message after a returned or nacked one
        is sent too (the caller counts only the settled prefix, and sends the rest again). Raises
        MessageNacked for a nack (retried like a lost connection) and TimeoutError when the confirms do not
        come in time.
        """
        wait_until = time.monotonic() + timeout
        channel = self._connect(timeout)
        confirms.new_attempt()
        self._confirms = confirms
        try:
            sent_end = start
            for index in range(start, end):
                message = messages[index]
                properties: dict[str, Any] = {"message_id": message.message_id, "delivery_mode": 2}
                correlation_id = (message.headers or {}).get("correlation_id")
                if correlation_id:
                    properties["correlation_id"] = correlation_id
                prepared = amqp.Message(
                    message.body,
                    content_type=message.content_type,
                    content_encoding="utf-8",
                    application_headers=dict(message.headers or {}),
                    **properties,
                )
                confirms.sent(self._next_tag, index, message.message_id)
                self._next_tag += 1
                # The frames go straight out. channel.basic_publish would first poll the socket for a
                # connection.blocked notice and set the socket's timeout twice, for every message: a
                # third of the relay's CPU per message. The socket keeps its write timeout, and returns,
                # nacks and notices are read below, once the whole batch is on the wire.
                channel.send_method(
                    amqp.spec.Basic.Publish,
                    "Bssbb",
                    (0, message.exchange, message.routing_key, True, False),
                    prepared,
                )
                sent_end = index + 1
            while not confirms.settled(start, sent_end):
                remaining = wait_until - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"no confirm within {timeout:.1f}s")
                assert self._conn is not None
                self._conn.drain_events(timeout=remaining)
            failure = confirms.first_failure()
            if failure is not None and failure in confirms.nacked:
                raise amqp.exceptions.MessageNacked(f"broker nacked message {messages[failure].message_id}")
        finally:
            self._confirms = None

    def _send_memory(
        self, messages: Sequence[OutgoingMessage], start: int, end: int, confirms: _Confirms
    ) -> None:
        """The memory transport takes each message synchronously: no confirms to wait for."""
        channel = self._connect(self.confirm_timeout)
        for index in range(start, end):
            message = messages[index]
            try:
                self._check_routable_in_memory(channel, message.exchange, message.routing_key)
            except Unroutable as exc:
                confirms.returned[index] = str(exc)
                return
            properties: dict[str, Any] = {"message_id": message.message_id}
            correlation_id = (message.headers or {}).get("correlation_id")
            if correlation_id:
                properties["correlation_id"] = correlation_id
            Producer(channel).publish(
                message.body,
                exchange=message.exchange,
                routing_key=message.routing_key,
                mandatory=True,
                delivery_mode=2,
                content_type=message.content_type,
                content_encoding="utf-8",
                headers=dict(message.headers or {}),
                retry=False,
                **properties,
            )
            confirms.confirmed.add(index)

    def close(self) -> None:
        """Close the broker connection (a later publish reconnects)."""
        with self._lock:
            self._discard(graceful=True)

    def __enter__(self) -> Publisher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --------------------------------------------------------------------------------------------- consumer


@dataclass(frozen=True)
class Subscription:
    """One consumer queue, what it is bound to, and the handler for its events."""

    queue: str
    exchange: str
    routing_key: str
    handler: Callable[[Envelope], None]


def body_bytes(message: Message) -> bytes:
    """The raw body: py-amqp hands back str when the message names a content encoding (auto_decode)."""
    body = message.body
    if isinstance(body, bytes | bytearray | memoryview):
        return bytes(body)
    return str(body).encode(message.content_encoding or "utf-8")


def _header_int(headers: Mapping[str, Any], name: str) -> int:
    value = headers.get(name)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


class EventConsumer(ConsumerMixin):
    """Consumes envelopes and decides ack / requeue / dead-letter explicitly for every message.

    - handler returns → ack;
    - malformed envelope or PermanentError → dead letter at once (reject without requeue);
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
    ) -> None:
        self.url = url
        self.retry_delay = retry_delay
        self.subscriptions = list(subscriptions)
        self.delivery_limit = max(delivery_limit, 1)
        self.prefetch_count = prefetch_count
        self._amqp = is_amqp_url(url)
        self.connection = self._new_connection()
        self._stop = threading.Event()
        self.ready = threading.Event()

    def _new_connection(self) -> Connection:
        if self._amqp:
            # read/write timeouts bound the AMQP handshake too: a peer that accepts TCP but never speaks
            # AMQP must not hold the consumer (and its stop) forever.
            return Connection(
                self.url,
                heartbeat=20,
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
                queue_arguments=_quorum_args(self.connection, sub.queue, self.delivery_limit),
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
        while not self._stop.is_set():
            try:
                super().run(_tokens, safety_interval=0.2)
                backoff = 0.2
            except Exception:
                log.exception(
                    "consumer lost its broker connection; reconnecting", extra={"url": _safe(self.url)}
                )
                self.ready.clear()
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)

    def declare_with_retry(self) -> None:
        backoff = 0.2
        while not self._stop.is_set():
            try:
                self.declare()
                return
            except _connection_errors():
                log.exception("declaring consumer queues failed; retrying", extra={"url": _safe(self.url)})
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
        with correlation_scope(envelope.correlation_id):
            try:
                sub.handler(envelope)
            except PermanentError as exc:
                log.error(
                    "handler failed permanently; message dead-lettered",
                    extra={"queue": sub.queue, "message_id": envelope.id, "error": str(exc)},
                )
                self._dead_letter(sub, message, "rejected")
            except Exception as exc:  # noqa: BLE001 - not swallowed: _retry requeues or dead-letters it
                self._retry(sub, message, envelope, exc)
            else:
                message.ack()
                metrics.EVENTS_CONSUMED.labels(sub.queue).inc()

    def _deliveries(self, message: Message) -> int:
        headers = message.headers or {}
        if self._amqp:
            # Quorum queues count returns in x-delivery-count (absent on the first delivery).
            return _header_int(headers, "x-delivery-count") + 1
        return _header_int(headers, ATTEMPTS_HEADER) + 1

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
                message.requeue()
            else:
                self._memory_dead_letter(sub, message, "delivery_limit")
            return
        metrics.EVENTS_RETRIED.labels(sub.queue).inc()
        # Without a pause a broker redelivers at once and a short outage (database restart) would burn
        # through every delivery in milliseconds; the pause grows per delivery and ends early on stop.
        self._stop.wait(min(self.retry_delay * 2 ** (deliveries - 1), 5.0))
        if self._amqp:
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


def _safe(url: str) -> str:
    """The URL without its password, for logs."""
    parts = urlsplit(url)
    if parts.password:
        return url.replace(f":{parts.password}@", ":***@", 1)
    return url


# -------------------------------------------------------------------------------------------------- DLQ


@dataclass(frozen=True)
class DeadLetter:
    """One message waiting in a dead-letter queue."""

    body: bytes
    headers: dict[str, Any]
    envelope: Envelope | None
    reason: str | None
    exchange: str | None
    routing_key: str | None
    queue: str | None = None

    def __str__(self) -> str:
        """One line for the operator: why, from where, and which event (or the start of the raw body)."""
        what = (
            f"{self.envelope.type} v{self.envelope.version} id={self.envelope.id}"
            if self.envelope
            else "malformed body " + self.body[:80].decode("utf-8", errors="replace")
        )
        return f"[{self.reason or '?'}] {self.exchange or '?'} {self.routing_key or '?'}: {what}"


def _death(headers: Mapping[str, Any]) -> dict[str, Any]:
    deaths = headers.get("x-death")
    if isinstance(deaths, list) and deaths and isinstance(deaths[0], dict):
        return deaths[0]
    return {}


def _as_dead_letter(message: Any) -> DeadLetter:
    headers = dict(message.headers or {})
    body = body_bytes(message)
    try:
        envelope: Envelope | None = Envelope.from_bytes(body)
    except MalformedMessage:
        envelope = None
    death = _death(headers)
    keys = death.get("routing-keys") or []
    reason = death.get("reason")
    exchange = death.get("exchange")
    queue = death.get("queue")
    return DeadLetter(
        body=body,
        headers=headers,
        envelope=envelope,
        reason=reason if isinstance(reason, str) else None,
        exchange=exchange if isinstance(exchange, str) else None,
        routing_key=keys[0] if keys and isinstance(keys[0], str) else None,
        queue=queue if isinstance(queue, str) else None,
    )


def _dlq_of(queue: str) -> str:
    # Operators type either the consumer queue or its DLQ; both mean the same dead-letter queue.
    return queue if queue.endswith(".dlq") else dlq_name(queue)


def _get(channel: Any, queue: str) -> Message | None:
    # kombu's Queue.get hands back a kombu Message on every transport (body as bytes, headers, ack()).
    message: Message | None = Queue(_dlq_of(queue), no_declare=True)(channel).get(no_ack=False)
    return message


def list_dlq(url: str, queue: str, limit: int = 50) -> list[DeadLetter]:
    """Look at up to `limit` messages of the dead-letter queue of `queue` (or of `queue` if it is a `.dlq`)
    without removing them."""
    fetched: list[Message] = []
    with Connection(url, connect_timeout=5) as conn, _channel(conn) as channel:
        for _ in range(limit):
            message = _get(channel, queue)
            if message is None:
                break
            fetched.append(message)
        # Put them back only after fetching all, or the broker would hand the first one out again. (The
        # memory transport does not restore unacked messages on close, so it is done explicitly.)
        for message in fetched:
            message.requeue()
    return [_as_dead_letter(message) for message in fetched]


def replay_dlq(url: str, queue: str, limit: int = 50, *, confirm_timeout: float = 5.0) -> int:
    """Republish up to `limit` dead letters of `queue` to their original exchange and routing key.

    Each message is acked from the DLQ only after the broker confirmed the republish; returns the count.
    """
    replayed = 0
    with (
        Publisher(url, confirm_timeout=confirm_timeout) as publisher,
        Connection(url, connect_timeout=5) as conn,
        _channel(conn) as channel,
    ):
        while replayed < limit:
            message = _get(channel, queue)
            if message is None:
                break
            dead = _as_dead_letter(message)
            if dead.exchange is None or dead.routing_key is None:
                log.warning("dead letter without x-death origin left in place", extra={"queue": queue})
                break
            headers = {k: v for k, v in dead.headers.items() if not k.startswith(_DEATH_HEADERS)}
            message_id = (message.properties or {}).get("message_id") or (
                dead.envelope.id if dead.envelope else ""
            )
            publisher.publish(
                exchange=dead.exchange,
                routing_key=dead.routing_key,
                body=dead.body,
                message_id=str(message_id),
                headers=headers,
                content_type=message.content_type or "application/json",
            )
            message.ack()
            replayed += 1
    return replayed


class RelayWorker:
    """Declares the broker topology (waiting while the broker is away), then relays an outbox until stopped.

    Submissions keep landing in the outbox meanwhile; nothing is published before the consumer queues that
    must receive it exist.
    """

    def __init__(
        self,
        relay: Any,
        amqp_url: str,
        *,
        delivery_limit: int,
        timeout: float = 5.0,
        max_backoff: float = 5.0,
    ) -> None:
        self.relay = relay
        self.amqp_url = amqp_url
        self.delivery_limit = delivery_limit
        self.timeout = timeout
        self.max_backoff = max_backoff

    def run(self, stop: threading.Event) -> None:
        if wait_for_topology(
            self.amqp_url,
            stop,
            delivery_limit=self.delivery_limit,
            timeout=self.timeout,
            max_backoff=self.max_backoff,
        ):
            self.relay.run(stop)
