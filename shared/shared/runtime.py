"""Runs a service's long-lived workers (consumers, outbox relays, schedulers) in threads until stopped."""

from __future__ import annotations

import contextlib
import faulthandler
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import FrameType
from typing import Protocol, TypeVar

log = logging.getLogger(__name__)


class Worker(Protocol):
    """Anything that runs until `stop` is set, then returns promptly."""

    def run(self, stop: threading.Event) -> None: ...


class WorkerFailed(RuntimeError):
    """A worker raised; the others were stopped."""


class SignalFlag:
    """The signals received so far, recorded by a handler that takes no lock; poll it from ordinary code.

    A handler that called threading.Event.set() could hang the process for good: Python runs a handler in
    the main thread between two bytecodes, possibly while that very thread holds the Event's lock (inside
    Event.wait, or inside the set() of a first signal when a second one arrives - Ctrl-C reaching a process
    that its supervisor is SIGTERMing at the same moment), and the lock is not reentrant. Logging from a
    handler risks the same on the stream's lock. So the handler only appends to a list (atomic under the
    GIL) and whoever polls the flag sets the Event and logs.
    """

    def __init__(self) -> None:
        self.received: list[int] = []

    def __call__(self, signum: int, _frame: FrameType | None) -> None:
        self.received.append(signum)

    def is_set(self) -> bool:
        return bool(self.received)

    def wait(self, timeout: float) -> bool:
        """Sleeps `timeout` (the poll interval bounds how late a signal is noticed); True once signalled."""
        if not self.received:
            time.sleep(timeout)
        return self.is_set()

    def install(
        self, signals: Sequence[signal.Signals] = (signal.SIGTERM, signal.SIGINT)
    ) -> dict[int, object]:
        """Makes this the handler of `signals`; answers the previous handlers, for restore()."""
        return {sig: signal.signal(sig, self) for sig in signals}

    @staticmethod
    def restore(previous: dict[int, object]) -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]

    def name(self) -> str:
        return signal.Signals(self.received[0]).name if self.received else ""


def run_all(
    workers: Sequence[Worker],
    stop: threading.Event | None = None,
    *,
    join_timeout: float = 10.0,
) -> None:
    """Run every worker in its own thread until `stop` is set, SIGTERM/SIGINT arrives or one worker fails.

    Signal handlers are installed only when called from the main thread (Python allows no other) and the
    previous handlers are restored on return. Raises WorkerFailed (chained to the first error) on failure.
    """
    stop = stop if stop is not None else threading.Event()
    errors: list[BaseException] = []

    def guarded(worker: Worker) -> None:
        try:
            worker.run(stop)
        except BaseException as exc:
            log.exception("worker failed; stopping the others", extra={"worker": type(worker).__name__})
            errors.append(exc)
            stop.set()

    signalled = SignalFlag()
    previous: dict[int, object] = {}
    if threading.current_thread() is threading.main_thread():
        previous = signalled.install()

    threads = [
        threading.Thread(target=guarded, args=(w,), name=f"worker-{type(w).__name__}-{i}", daemon=True)
        for i, w in enumerate(workers)
    ]
    try:
        for thread in threads:
            thread.start()
        # Waiting on the Event (not join) keeps the main thread responsive to signals.
        while not stop.is_set() and any(t.is_alive() for t in threads):
            if signalled.is_set():
                log.info("stopping on signal", extra={"signal": signalled.name()})
                break
            stop.wait(0.2)
        stop.set()
        for thread in threads:
            thread.join(join_timeout)
            if thread.is_alive():
                log.warning("worker did not stop in time", extra={"thread": thread.name})
    finally:
        SignalFlag.restore(previous)
    if errors:
        raise WorkerFailed(f"{len(errors)} worker(s) failed: {errors[0]!r}") from errors[0]


@dataclass
class Periodic:
    """Calls `job` every `interval` seconds until stopped; a failing round is logged and retried next time."""

    name: str
    job: Callable[[], object]
    interval: float

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.job()
            except Exception:
                log.exception("%s round failed; retrying in %.1fs", self.name, self.interval)
            stop.wait(self.interval)


class _CommonHolder(Protocol):
    @property
    def common(self) -> _HasLogLevel: ...


class _HasLogLevel(Protocol):
    @property
    def log_level(self) -> str: ...


S = TypeVar("S", bound=_CommonHolder)


def worker_main(service: str, load_settings: Callable[[], S], build: Callable[[S], Worker]) -> None:
    """The `python -m <service>.worker` entry point shared by every service.

    Settings are read once (a bad value stops the process with one line naming the variable, exit 2),
    logs become JSON lines, `DOCROUTE_METRICS_PORT` (when set) serves Prometheus metrics and the worker's
    /readyz (503 while a consumer waits for an unavailable dependency) and /healthz, and the worker runs
    until SIGTERM or SIGINT.
    """
    from shared.health import serve_worker_endpoints
    from shared.logs import configure_logging
    from shared.settings import Env, SettingsError

    try:
        settings = load_settings()
        metrics_port = Env().int("DOCROUTE_METRICS_PORT", 0, min=0, max=65535)
    except SettingsError as exc:
        print(f"{service} worker: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    configure_logging(settings.common.log_level)
    # A worker that will not stop is aborted by its supervisor: SIGABRT then prints every thread's stack.
    with contextlib.suppress(ValueError, OSError):  # stderr without a file descriptor (captured): skip
        faulthandler.enable()
    if metrics_port:
        try:
            serve_worker_endpoints(metrics_port)
        except OSError as exc:
            # A port another process holds is a configuration problem: one line, not a traceback.
            print(
                f"{service} worker: DOCROUTE_METRICS_PORT: cannot listen on {metrics_port}: {exc}",
                file=sys.stderr,
            )
            raise SystemExit(1) from None
    worker = build(settings)
    log.info("%s worker started", service, extra={"metrics_port": metrics_port or None})
    try:
        run_all([worker])
    finally:
        close = getattr(worker, "close", None)
        if callable(close):
            close()
