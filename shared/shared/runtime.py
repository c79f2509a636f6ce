"""Runs a service's long-lived workers (consumers, outbox relays, schedulers) in threads until stopped."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Sequence
from types import FrameType
from typing import Protocol

log = logging.getLogger(__name__)


class Worker(Protocol):
    """Anything that runs until `stop` is set, then returns promptly."""

    def run(self, stop: threading.Event) -> None: ...


class WorkerFailed(RuntimeError):
    """A worker raised; the others were stopped."""


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

    previous: dict[signal.Signals, object] = {}
    if threading.current_thread() is threading.main_thread():

        def on_signal(signum: int, _frame: FrameType | None) -> None:
            log.info("stopping on signal", extra={"signal": signal.Signals(signum).name})
            stop.set()

        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, on_signal)

    threads = [
        threading.Thread(target=guarded, args=(w,), name=f"worker-{type(w).__name__}-{i}", daemon=True)
        for i, w in enumerate(workers)
    ]
    try:
        for thread in threads:
            thread.start()
        # Waiting on the Event (not join) keeps the main thread responsive to signals.
        while not stop.is_set() and any(t.is_alive() for t in threads):
            stop.wait(0.2)
        stop.set()
        for thread in threads:
            thread.join(join_timeout)
            if thread.is_alive():
                log.warning("worker did not stop in time", extra={"thread": thread.name})
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]
    if errors:
        raise WorkerFailed(f"{len(errors)} worker(s) failed: {errors[0]!r}") from errors[0]
