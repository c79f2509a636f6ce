"""Telling a dependency outage from a message's own failure, and probing a dependency until it answers."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass

import amqp.exceptions
import sqlalchemy
import sqlalchemy.exc
from kombu.exceptions import OperationalError as KombuOperationalError
from sqlalchemy.engine import Engine

from shared import metrics
from shared.health import DependencyHealth
from shared.messaging.publishing import PublishError, Unroutable
from shared.objectstore.port import StoreUnavailable

log = logging.getLogger(__name__)

#: Names of the dependencies the classifier knows; a DependencyUnavailable may name any other.
DATABASE = "database"
OBJECT_STORE = "object_store"
BROKER = "broker"

#: A probe answers (returns) when its dependency works again and raises while it does not.
Probe = Callable[[], None]
#: Maps a handler's exception to the name of the unavailable dependency, or None for the message's own error.
Classifier = Callable[[BaseException], "str | None"]

# psycopg's own classes for "cannot talk to the server", when a raw DB-API error escapes SQLAlchemy.
_DRIVER_CONNECTION_ERRORS = frozenset({"OperationalError", "InterfaceError"})
# Causes and contexts are followed this deep; a chain longer than this is not a wrapped outage.
_MAX_CHAIN = 8


class DependencyUnavailable(Exception):
    """A dependency (database, object store, broker, ...) cannot be reached; the message itself is fine.

    Raised by a handler or an adapter that knows it; the consumer also recognises the usual connection
    errors of SQLAlchemy/psycopg, the object store and the broker (see `classify_failure`).
    """

    def __init__(self, dependency: str, detail: str = "") -> None:
        super().__init__(f"{dependency} unavailable" + (f": {detail}" if detail else ""))
        self.dependency = dependency


def _database_down(exc: BaseException) -> bool:
    if isinstance(exc, sqlalchemy.exc.DBAPIError):
        # OperationalError / InterfaceError: connection refused, reset, server shut down, SSL EOF...;
        # connection_invalidated: SQLAlchemy saw the connection die under the statement.
        return exc.connection_invalidated or isinstance(
            exc, sqlalchemy.exc.OperationalError | sqlalchemy.exc.InterfaceError
        )
    if isinstance(exc, sqlalchemy.exc.TimeoutError | sqlalchemy.exc.DisconnectionError):
        return True  # the pool waited in vain for a connection, or could not revive one
    cls = type(exc)
    return cls.__module__.startswith("psycopg") and cls.__name__ in _DRIVER_CONNECTION_ERRORS


def _dependency_of(exc: BaseException) -> str | None:
    if isinstance(exc, DependencyUnavailable):
        return exc.dependency
    if _database_down(exc):
        return DATABASE
    if isinstance(exc, StoreUnavailable):
        return OBJECT_STORE
    if isinstance(exc, PublishError) and not isinstance(exc, Unroutable):
        return BROKER  # the handler's own publish was not confirmed: the broker is away
    if isinstance(exc, KombuOperationalError | amqp.exceptions.ConnectionError):
        return BROKER  # the handler's own broker connection failed
    return None


def classify_failure(exc: BaseException) -> str | None:
    """The dependency `exc` says is unavailable, or None when the failure is the message's own.

    Follows `raise ... from` causes and implicit contexts, so an adapter's wrapped connection error still
    counts as an outage.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen and len(seen) < _MAX_CHAIN:
        seen.add(id(current))
        dependency = _dependency_of(current)
        if dependency is not None:
            return dependency
        current = current.__cause__ or (None if current.__suppress_context__ else current.__context__)
    return None


@dataclass
class Backoff:
    """Capped exponential delays: `first`, doubling, never above `cap`; `reset()` starts over."""

    first: float = 0.5
    cap: float = 10.0
    _next: float = 0.0

    def __post_init__(self) -> None:
        self._next = self.first

    def next(self) -> float:
        delay = self._next
        self._next = min(self._next * 2, self.cap)
        return delay

    def reset(self) -> None:
        self._next = self.first


class ProbeRunner:
    """Runs a dependency's probe in a helper thread, so a probe that hangs (a frozen server) never holds up
    the consumer's stop, and never more than one probe per dependency at a time."""

    def __init__(self, probes: Mapping[str, Probe], *, timeout: float = 5.0) -> None:
        self.probes = dict(probes)
        self.timeout = timeout
        self._pending: dict[str, Future[None]] = {}

    def has_probe(self, dependency: str) -> bool:
        return dependency in self.probes

    def answers(self, dependency: str, stop: threading.Event) -> bool:
        """True if the probe returned within `timeout`; False if it raised, timed out or `stop` was set."""
        future = self._pending.get(dependency)
        if future is None:
            future = self._start(self.probes[dependency])
            self._pending[dependency] = future
        deadline = time.monotonic() + self.timeout
        while not future.done() and time.monotonic() < deadline and not stop.is_set():
            stop.wait(0.05)
        if not future.done():
            return False  # still running: looked at again by the next call, never started twice
        del self._pending[dependency]
        return future.exception() is None

    @staticmethod
    def _start(probe: Probe) -> Future[None]:
        future: Future[None] = Future()

        def run() -> None:
            try:
                probe()
            except BaseException as exc:  # noqa: BLE001 - handed to the waiting consumer through the future
                future.set_exception(exc)
            else:
                future.set_result(None)

        threading.Thread(target=run, name="dependency-probe", daemon=True).start()
        return future


class Pause:
    """One consumer's pause for one unavailable dependency: metric, readiness, log lines and backoff.

    `begin` raises the gauge `docroute_consumer_paused{queue,dependency}`, counts the pause, marks the
    dependency down for readiness and logs; `end` undoes all that and logs how long it lasted.
    """

    def __init__(
        self,
        queue: str,
        dependency: str,
        *,
        reporter: object,
        health: DependencyHealth,
        backoff: Backoff,
    ) -> None:
        self.queue = queue
        self.dependency = dependency
        self.reporter = reporter
        self.health = health
        self.backoff = backoff
        self.answered_at_once = 0
        self.started = 0.0

    def begin(self, error: BaseException) -> None:
        self.started = time.monotonic()
        metrics.CONSUMER_PAUSED.labels(self.queue, self.dependency).inc()
        metrics.CONSUMER_PAUSES.labels(self.queue, self.dependency).inc()
        self.health.report_down(self.dependency, self.reporter, type(error).__name__)
        log.warning(
            "consumer paused: %s unavailable; no message is taken until it answers",
            self.dependency,
            extra={"queue": self.queue, "dependency": self.dependency, "error": repr(error)[:500]},
        )

    def end(self, outcome: str) -> None:
        duration = time.monotonic() - self.started
        metrics.CONSUMER_PAUSED.labels(self.queue, self.dependency).dec()
        metrics.CONSUMER_PAUSED_SECONDS.labels(self.queue, self.dependency).inc(duration)
        self.health.report_up(self.dependency, self.reporter)
        log.info(
            "consumer resumed after %.1fs (%s): %s",
            duration,
            self.dependency,
            outcome,
            extra={"queue": self.queue, "dependency": self.dependency, "paused_seconds": round(duration, 3)},
        )


def database_probe(engine: Engine) -> Probe:
    """A probe that answers when `engine`'s database runs `SELECT 1` (through the pool, as handlers do)."""

    def probe() -> None:
        with engine.connect() as conn:
            conn.execute(sqlalchemy.text("SELECT 1"))

    return probe
