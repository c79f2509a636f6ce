"""The confirming publisher: persistent, `mandatory`, pipelined batches, bounded in time."""

# kombu ships py.typed but leaves most functions unannotated; strict mode would flag every call into it.
# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from struct import pack
from typing import Any

import amqp.exceptions
import amqp.serialization
import amqp.spec
from kombu.connection import Connection
from kombu.messaging import Producer

from shared import metrics
from shared.logs import current_correlation_id
from shared.messaging.broker import connect_any, connection_errors, is_amqp_url
from shared.naming import is_events_exchange

log = logging.getLogger(__name__)


class PublishError(Exception):
    """The broker did not confirm the message within the retry budget."""


class Unroutable(PublishError):
    """The broker confirmed but returned the message: no queue is bound for its routing key."""


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


#: How many bytes of a batch's frames are gathered before they are written to the socket.
_WRITE_CHUNK = 256 * 1024

_PUBLISH_METHOD = pack(">HH", *amqp.spec.Basic.Publish)
_BASIC_CLASS = amqp.spec.Basic.Publish[0]


class PublishFrames:
    """The frames of a basic.publish (mandatory, not immediate) with its content, byte for byte what
    py-amqp's frame writer sends for `channel.send_method(Basic.Publish, "Bssbb", ..., message)`.

    The method frame depends only on the exchange and routing key, so it is built once per pair (a
    service publishes to a few dozen); the content header and body frames are built per message.
    """

    def __init__(self, channel_id: int, frame_max: int) -> None:
        self.channel_id = channel_id
        self.frame_max = frame_max
        self._methods: dict[tuple[str, str], bytes] = {}

    def _frame(self, kind: int, payload: bytes) -> bytes:
        return b"".join((pack(">BHI", kind, self.channel_id, len(payload)), payload, b"\xce"))

    def method(self, exchange: str, routing_key: str) -> bytes:
        key = (exchange, routing_key)
        frame = self._methods.get(key)
        if frame is None:
            if len(self._methods) >= 4096:
                self._methods.clear()  # bounded, whatever the routing keys
            args = amqp.serialization.dumps("Bssbb", (0, exchange, routing_key, True, False))
            frame = self._methods[key] = self._frame(1, _PUBLISH_METHOD + args)
        return frame

    def publish(self, exchange: str, routing_key: str, message: amqp.Message) -> bytes:
        body = message.body
        if isinstance(body, str):  # as py-amqp does: str bodies are sent in their content encoding
            body = body.encode(message.properties.setdefault("content_encoding", "utf-8"))
        header = pack(">HHQ", _BASIC_CLASS, 0, len(body)) + message._serialize_properties()
        parts = [self.method(exchange, routing_key), self._frame(2, header)]
        chunk = self.frame_max - 8
        for offset in range(0, len(body), chunk):
            parts.append(self._frame(3, body[offset : offset + chunk]))
        return b"".join(parts)


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
        self._frames: PublishFrames | None = None

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
                except (*connection_errors(), amqp.exceptions.MessageNacked) as exc:
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
            connection = channel.connection
            if connection is None:
                raise amqp.exceptions.RecoverableConnectionError("connection already closed")
            encoder = self._encoder(channel.channel_id, connection.frame_max)
            pending: list[bytes] = []
            size = 0
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
                # The batch's frames are written together, a few hundred kilobytes per write: one
                # basic_publish per message (a socket write each, the frame writer's lock, a promise)
                # cost more CPU than the broker's confirms. The bytes are what py-amqp's frame writer
                # sends (PublishFrames, tested against it). Returns, nacks and notices are read below,
                # once the whole batch is on the wire.
                frames = encoder.publish(message.exchange, message.routing_key, prepared)
                pending.append(frames)
                size += len(frames)
                if size >= _WRITE_CHUNK:
                    self._write(connection, pending)
                    pending, size = [], 0
            if pending:
                self._write(connection, pending)
            while not confirms.settled(start, end):
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

    def _encoder(self, channel_id: int, frame_max: int) -> PublishFrames:
        encoder = self._frames
        if encoder is None or encoder.channel_id != channel_id or encoder.frame_max != frame_max:
            encoder = self._frames = PublishFrames(channel_id, frame_max)
        return encoder

    @staticmethod
    def _write(connection: Any, frames: list[bytes]) -> None:
        connection.transport.write(b"".join(frames))
        connection.bytes_sent += len(frames)  # what the heartbeat check counts: frames written

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
