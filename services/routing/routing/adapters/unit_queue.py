"""The unit task-queue adapter: declares `routing.tasks.<code>`, takes messages by basic_get via kombu."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from amqp.channel import Channel as AmqpChannel
from kombu import Connection, Queue
from kombu.serialization import prepare_accept_content
from shared.messaging import body_bytes, connect_any, declare_unit_queue
from shared.naming import unit_queue

log = logging.getLogger(__name__)

ACCEPT = ["json", "application/json", "application/octet-stream"]


class QueueMessage(Protocol):
    @property
    def body(self) -> bytes: ...

    def ack(self) -> None: ...

    def reject(self) -> None: ...


class QueueReader(Protocol):
    def get(self) -> QueueMessage | None: ...

    def get_many(self, limit: int) -> list[QueueMessage]: ...

    def ack(self, messages: list[QueueMessage]) -> None: ...


class UnitQueues(Protocol):
    """Port: declare a unit's queue; read one unit's queue for the length of a poll."""

    def ping(self) -> None: ...

    def declare(self, codes: Iterable[str]) -> None: ...

    def assume_declared(self, code: str) -> None: ...

    def reader(self, code: str) -> Any: ...  # a context manager yielding a QueueReader


@dataclass
class _Lane:
    """One pooled broker connection with its open channel, used by one thread at a time."""

    connection: Connection
    channel: Any
    pid: int
    # The consumer prefetch last set on the channel: a poll sets it only when it needs another value.
    prefetch: int = 0

    def close(self) -> None:
        if self.pid != os.getpid():
            # Inherited through fork: the socket is the parent's session too; closing it here would
            # end the parent's connection. Dropping the reference is enough.
            return
        try:
            # Closing the channel gives its unacked messages back to the queue (kombu's memory
            # transport does it only here, not on connection close).
            self.channel.close()
            self.connection.close()
        except Exception:  # a dead connection is being thrown away anyway
            log.debug("closing a broken unit-queue connection failed", exc_info=True)


@dataclass
class _KombuMessage:
    message: Any
    reader: _PooledReader

    @property
    def body(self) -> bytes:
        return body_bytes(self.message)

    def ack(self) -> None:
        self.message.ack()
        self.reader.unsettled -= 1

    def reject(self) -> None:
        # Without requeue the quorum queue dead-letters it to routing.tasks.<code>.dlq.
        self.message.reject(requeue=False)
        self.reader.unsettled -= 1


@dataclass
class _PooledReader:
    """basic_get on one unit's queue over a pooled lane; counts messages taken but not yet settled."""

    queues: KombuUnitQueues
    code: str
    lane: _Lane
    taken: int = 0
    unsettled: int = 0
    _queue: Any = field(default=None, repr=False)

    def _bind(self) -> None:
        self._queue = Queue(unit_queue(self.code), channel=self.lane.channel, no_declare=True)

    def get(self) -> QueueMessage | None:
        return self._get()

    def _get(self) -> _KombuMessage | None:
        if self._queue is None:
            self._bind()
        try:
            message = self._queue.get(no_ack=False, accept=ACCEPT)
        except self.queues.recoverable_errors(self.lane):
            if self.taken:
                raise  # messages of this poll live on that channel: fail the poll, they go back
            # A pooled connection the broker dropped while idle, or a queue deleted behind our back:
            # start over once on a fresh connection, declaring the queue again.
            log.info("unit queue %s: pooled connection unusable; reconnecting", self.code, exc_info=True)
            self.queues.forget(self.code)
            self.lane.close()
            self.lane = self.queues.open_lane()
            self.queues.ensure_declared(self.lane, self.code)
            self._bind()
            message = self._queue.get(no_ack=False, accept=ACCEPT)
        if message is None:
            return None
        return self._taken(message)

    def _taken(self, message: Any) -> _KombuMessage:
        self.taken += 1
        self.unsettled += 1
        return _KombuMessage(message, self)

    def ack(self, messages: list[QueueMessage]) -> None:
        """Acks `messages`. When they are every message this reader holds unsettled (a pooled channel
        carries one reader's messages at a time), one basic.ack with `multiple` for the highest delivery
        tag settles them all: one frame, and one settle command in a quorum queue, instead of one each."""
        taken = [m for m in messages if isinstance(m, _KombuMessage) and m.reader is self]
        channel = self.lane.channel
        if len(taken) < 2 or len(taken) != len(messages) or len(taken) != self.unsettled:
            for message in messages:
                message.ack()
            return
        if not isinstance(channel, AmqpChannel):
            for message in taken:
                message.ack()
            return
        channel.basic_ack(max(m.message.delivery_tag for m in taken), multiple=True)
        self.unsettled -= len(taken)

    def get_many(self, limit: int) -> list[QueueMessage]:
        """Up to `limit` messages: a first basic_get, which also tells how many more are ready, then those
        (up to `limit` in all) through a short-lived consumer with that prefetch.

        A quorum queue does far less work for one consumer taking n messages than for n basic.get
        commands (a third of the broker CPU per message, measured here), and the messages come in one
        stream instead of one round trip each. Every message is still unacked until the caller settles it.
        """
        first = self._get()
        if first is None:
            return []
        got: list[QueueMessage] = [first]
        channel = self.lane.channel
        if not isinstance(channel, AmqpChannel):  # kombu's memory transport: one get at a time
            while len(got) < limit and (message := self.get()) is not None:
                got.append(message)
            return got
        ready = int(first.message.delivery_info.get("message_count") or 0)
        want = min(limit - 1, ready)
        if want <= 0:
            return got
        accept = prepare_accept_content(ACCEPT)
        for raw in _consume(self.lane, unit_queue(self.code), want):
            message = channel.message_to_python(raw)
            message.accept = accept
            got.append(self._taken(message))
        return got


# How long a poll waits for messages the broker said were ready; fewer arrive only when another poll of
# the same unit took some meanwhile.
CONSUME_WAIT = 0.2


def _consume(lane: _Lane, queue: str, want: int) -> list[Any]:
    """Takes up to `want` messages with a consumer of prefetch `want`, then cancels it. Deliveries that
    arrive before the broker confirms the cancel are kept too: none is left behind on the channel."""
    channel: AmqpChannel = lane.channel
    raws: list[Any] = []
    if lane.prefetch != want:
        # Per consumer (global=False), so it applies to the consumers started after it; polls of a busy
        # unit all want the same batch, so this round trip is mostly skipped.
        channel.basic_qos(0, want, False)
        lane.prefetch = want
    tag = channel.basic_consume(queue, callback=raws.append)
    full = False
    try:
        deadline = time.monotonic() + CONSUME_WAIT
        while len(raws) < want:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                channel.connection.drain_events(timeout=remaining)
            except TimeoutError:
                break
        full = len(raws) >= want
    finally:
        if full:
            # The consumer holds `want` unacked deliveries, its whole prefetch: the broker sends it nothing
            # more, and it handles this cancel before the ack that follows on the same channel. Nothing
            # can arrive after it, so there is no confirmation to wait for.
            channel.basic_cancel(tag, nowait=True)
            channel.callbacks.pop(tag, None)
            channel.cancel_callbacks.pop(tag, None)
        else:
            channel.basic_cancel(tag)
    return raws


class KombuUnitQueues:
    """Unit queues on the broker named by an AMQP URL (or kombu's memory:// transport); a `;`-separated list
    of a cluster's nodes fails over to the next node that answers, as the consumers and publishers do.

    A poll borrows a connection and channel from a small per-process pool instead of connecting, and
    each unit's queue is declared once per process. The pool is thread-safe (gunicorn threads) and is
    dropped in a forked child, which opens its own connections lazily.
    """

    def __init__(
        self, url: str, *, delivery_limit: int = 5, connect_timeout: float = 5.0, max_idle: int = 8
    ) -> None:
        self.url = url
        self.delivery_limit = delivery_limit
        self.connect_timeout = connect_timeout
        self.max_idle = max_idle
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._idle: list[_Lane] = []
        self._declared: set[str] = set()

    def _connection(self) -> Connection:
        return Connection(self.url, connect_timeout=self.connect_timeout)

    def _this_process(self) -> None:
        """Call with the lock held: forget what a parent process pooled or declared before a fork."""
        pid = os.getpid()
        if pid != self._pid:
            self._pid = pid
            self._idle = []
            self._declared = set()

    def recoverable_errors(self, lane: _Lane) -> tuple[type[BaseException], ...]:
        return tuple(lane.connection.connection_errors) + tuple(lane.connection.channel_errors)

    def open_lane(self) -> _Lane:
        conn = self._connection()
        try:
            # A `;`-separated URL lists a cluster's nodes: the first that answers (shared.messaging).
            connect_any(conn)
            return _Lane(conn, conn.channel(), os.getpid())
        except BaseException:
            conn.close()
            raise

    def _acquire(self) -> tuple[_Lane, bool]:
        """A lane and whether it came from the pool (and may have gone stale while idle)."""
        with self._lock:
            self._this_process()
            if self._idle:
                return self._idle.pop(), True
        return self.open_lane(), False

    def _release(self, lane: _Lane, *, reusable: bool) -> None:
        if reusable:
            with self._lock:
                self._this_process()
                if lane.pid == self._pid and len(self._idle) < self.max_idle:
                    self._idle.append(lane)
                    return
        lane.close()

    def forget(self, code: str) -> None:
        with self._lock:
            self._declared.discard(code)

    def assume_declared(self, code: str) -> None:
        """The unit's queue is known to exist (the database says it was declared): the first poll in
        this process need not declare it again."""
        with self._lock:
            self._this_process()
            self._declared.add(code)

    def ensure_declared(self, lane: _Lane, code: str) -> None:
        with self._lock:
            self._this_process()
            if code in self._declared:
                return
        # Declaring makes a poll on a brand-new unit work before the worker ran; once per process is
        # enough (a queue deleted later is noticed by the failing get, which declares it again).
        declare_unit_queue(lane.connection, code, delivery_limit=self.delivery_limit)
        with self._lock:
            self._declared.add(code)

    def ping(self) -> None:
        # A fresh connection on purpose: readiness must prove the broker answers now.
        with self._connection() as conn:
            connect_any(conn)

    def _with_lane(self, job: Callable[[_Lane], None]) -> _Lane:
        """Runs `job` on a pooled lane, once more on a fresh one if the pooled one had gone stale."""
        lane, pooled = self._acquire()
        try:
            job(lane)
            return lane
        except Exception:
            lane.close()
            if not pooled:
                raise
        lane = self.open_lane()
        try:
            job(lane)
        except BaseException:
            lane.close()
            raise
        return lane

    def declare(self, codes: Iterable[str]) -> None:
        pending = list(codes)

        def declare_all(lane: _Lane) -> None:
            for code in pending:
                declare_unit_queue(lane.connection, code, delivery_limit=self.delivery_limit)
                with self._lock:
                    self._this_process()
                    self._declared.add(code)

        self._release(self._with_lane(declare_all), reusable=True)

    @contextmanager
    def reader(self, code: str) -> Iterator[QueueReader]:
        lane = self._with_lane(lambda lane: self.ensure_declared(lane, code))
        reader = _PooledReader(self, code, lane)
        reusable = False
        try:
            yield reader
            # A message taken and neither acked nor rejected stays unacked for the channel's life:
            # only a fully settled channel goes back to the pool; closing any other requeues them.
            reusable = reader.unsettled == 0
        finally:
            self._release(reader.lane, reusable=reusable)

    def depths(self, codes: Iterable[str]) -> dict[str, int]:
        """Messages ready in each unit's queue, by passive declares on one connection; a missing queue is
        left out."""
        pending = list(codes)
        found: dict[str, int] = {}

        def measure(lane: _Lane) -> None:
            channel = lane.connection.channel()
            try:
                for code in pending:
                    try:
                        found[code] = int(channel.queue_declare(unit_queue(code), passive=True).message_count)
                    except tuple(lane.connection.channel_errors):
                        # 404 closes the channel: note the gap and carry on with a new one.
                        channel = lane.connection.channel()
            finally:
                channel.close()

        self._release(self._with_lane(measure), reusable=True)
        return found

    def close(self) -> None:
        """Closes the pooled connections (tests, shutdown); the pool refills on the next use."""
        with self._lock:
            idle, self._idle = self._idle, []
        for lane in idle:
            lane.close()
