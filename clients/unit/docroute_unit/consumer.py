"""The broker side: consume the unit's own queue with pika, settle each message, reconnect on failure."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel

from docroute_unit.backoff import Backoff
from docroute_unit.config import Config, amqp_urls
from docroute_unit.processor import Action, TaskProcessor

log = logging.getLogger("docroute_unit.consumer")

EXIT_OK = 0
EXIT_UNREACHABLE = 1  # --idle-exit ran out while the broker could not be reached
EXIT_FATAL = 3  # retrying cannot help: credentials, permissions, or stdout gone

_POLL = 0.25  # how often the consume loop looks at the stop flag and the idle clock

# Failures a fresh connection can cure: the broker restarted, closed us (e.g. rabbitmqctl
# close_connection), the network dropped, a heartbeat was missed, or the queue was deleted under us.
_RECOVERABLE: tuple[type[BaseException], ...] = (
    pika.exceptions.AMQPConnectionError,
    pika.exceptions.AMQPChannelError,
    OSError,
)
_FATAL_CONNECT: tuple[type[BaseException], ...] = (
    pika.exceptions.ProbableAuthenticationError,
    pika.exceptions.AuthenticationError,
    pika.exceptions.ProbableAccessDeniedError,
)


class FatalError(Exception):
    """A broker answer that will not change on retry."""


class _Finished(Exception):
    """Leaves the session loop with an exit code."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


def connection_parameters(config: Config) -> list[pika.URLParameters]:
    """One set of parameters per broker node of the `;`-separated URL: pika tries them in turn on each
    connect, so a cluster node that is down or unreachable is skipped for the next one."""
    out = []
    for url in amqp_urls(config.amqp_url):
        params = pika.URLParameters(url)
        if "heartbeat" not in parse_qs(urlsplit(url).query):
            params.heartbeat = config.heartbeat
        params.connection_attempts = 1  # retries are ours, with backoff and a stop flag
        params.socket_timeout = 10
        params.blocked_connection_timeout = 300
        # A name the operator sees in the management UI and can close with rabbitmqctl close_connection.
        params.client_properties = {
            "connection_name": f"docroute-unit {config.unit}",
            "product": "docroute-unit",
        }
        out.append(params)
    return out


class UnitConsumer:
    def __init__(
        self,
        config: Config,
        processor: TaskProcessor,
        stop: threading.Event,
        *,
        reconnect_backoff: Backoff | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.processor = processor
        self.stop = stop
        self.reconnect_backoff = reconnect_backoff or Backoff(0.5, config.reconnect_delay_max)
        self.clock = clock
        self.settled = 0
        self.connections = 0
        self._last_message = clock()

    def run(self) -> int:
        """Consume until stopped, --max-messages or --idle-exit; return the process exit code."""
        failures = 0
        while not self.stop.is_set():
            connected_before = self.connections
            try:
                self._session()
            except _Finished as done:
                return done.code
            except FatalError as exc:
                log.error("cannot consume; giving up", extra={"reason": str(exc), "queue": self.config.queue})
                return EXIT_FATAL
            except _FATAL_CONNECT as exc:
                log.error(
                    "broker refused the unit's credentials or virtual host; giving up",
                    extra={"reason": repr(exc)},
                )
                return EXIT_FATAL
            except _RECOVERABLE as exc:
                failures = 1 if self.connections > connected_before else failures + 1
                delay = self.reconnect_backoff.delay(failures)
                log.warning(
                    "not consuming; reconnecting",
                    extra={"reason": repr(exc), "attempt": failures, "retry_in": round(delay, 3)},
                )
                if self._idle_expired(extra=delay):
                    log.warning("idle time ran out while not consuming")
                    return EXIT_UNREACHABLE
                self.stop.wait(delay)
                continue
            return EXIT_OK
        return EXIT_OK

    def _idle_expired(self, extra: float = 0.0) -> bool:
        limit = self.config.idle_exit
        return limit is not None and self.clock() + extra - self._last_message >= limit

    def _session(self) -> None:
        connection = pika.BlockingConnection(connection_parameters(self.config))
        try:
            channel = connection.channel()
            try:
                # Passive: the unit account may only read its queue; routing owns the topology.
                declared = channel.queue_declare(self.config.queue, passive=True)
            except pika.exceptions.ChannelClosedByBroker as exc:
                if exc.reply_code == 403:
                    raise FatalError(f"access to {self.config.queue} refused: {exc.reply_text}") from exc
                raise
            channel.basic_qos(prefetch_count=self.config.prefetch)
            self.connections += 1
            log.info(
                "consuming",
                extra={"queue": self.config.queue, "ready": declared.method.message_count},
            )
            self._consume(connection, channel)
        except pika.exceptions.ChannelClosedByBroker as exc:
            if exc.reply_code == 403:
                raise FatalError(f"access to {self.config.queue} refused: {exc.reply_text}") from exc
            raise
        finally:
            if connection.is_open:
                # Closing a half-dead connection may fail; the broker requeues what we did not ack anyway.
                with contextlib.suppress(*_RECOVERABLE):
                    connection.close()

    def _consume(self, connection: pika.BlockingConnection, channel: BlockingChannel) -> None:
        for method, properties, body in channel.consume(self.config.queue, inactivity_timeout=_POLL):
            if method is None:
                if self.stop.is_set():
                    break
                if self._idle_expired():
                    log.info("idle; exiting", extra={"idle_exit": self.config.idle_exit})
                    self._leave(channel, EXIT_OK)
                continue
            assert properties is not None and body is not None
            self._last_message = self.clock()
            self._settle(connection, channel, method, properties, body)
            limit = self.config.max_messages
            if limit is not None and self.settled >= limit:
                log.info("--max-messages reached; exiting", extra={"settled": self.settled})
                self._leave(channel, EXIT_OK)
            if self.stop.is_set():
                break
        else:
            # The generator only ends on its own when the broker cancelled the consumer (queue deleted).
            raise pika.exceptions.ConsumerCancelled("consumer cancelled by the broker")
        log.info("stopping", extra={"settled": self.settled})
        self._leave(channel, EXIT_OK)

    def _leave(self, channel: BlockingChannel, code: int) -> None:
        # cancel() returns prefetched, unprocessed messages to the queue right away for other consumers.
        with contextlib.suppress(*_RECOVERABLE):
            channel.cancel()
        raise _Finished(code)

    def _settle(
        self,
        connection: pika.BlockingConnection,
        channel: BlockingChannel,
        method: pika.spec.Basic.Deliver,
        properties: pika.BasicProperties,
        body: bytes,
    ) -> None:
        headers = properties.headers or {}
        count = headers.get("x-delivery-count", 0)
        outcome = self.processor.process(body, delivery_count=count if isinstance(count, int) else 0)
        tag = method.delivery_tag
        if outcome.action is Action.ACK:
            channel.basic_ack(tag)
            self.settled += 1
        elif outcome.action is Action.REJECT:
            channel.basic_reject(tag, requeue=False)
            self.settled += 1
        else:
            self._pause(connection, outcome.delay)
            channel.basic_nack(tag, requeue=True)

    def _pause(self, connection: pika.BlockingConnection, seconds: float) -> None:
        # connection.sleep keeps heartbeats flowing, unlike time.sleep; short slices keep SIGTERM prompt.
        deadline = self.clock() + seconds
        while not self.stop.is_set():
            remaining = deadline - self.clock()
            if remaining <= 0:
                break
            connection.sleep(min(0.1, remaining))
