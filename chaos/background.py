"""A fault run in a thread of its own: its servers, its stack and its faults, while the caller does something
else. The fault tests run each 60 s outage this way, on private servers of its own, so that the outages (a
minute of waiting each) overlap instead of adding up."""

from __future__ import annotations

import threading

from chaos.faults import Fault
from chaos.run import Config, Row, Run


class BackgroundRun:
    """`Run(config)` set up and its faults run in a thread started at once; `rows()` waits for them (bounded),
    `close()` waits for the thread (bounded) and tears the run down."""

    def __init__(self, name: str, config: Config, faults: list[Fault]) -> None:
        self.name = name
        self.run = Run(config)
        self._faults = faults
        self._rows: list[Row] = []
        self._error: BaseException | None = None
        self._done = threading.Event()
        self._close_lock = threading.Lock()
        self._closing = False
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._thread.start()

    def _main(self) -> None:
        try:
            self.run.setup()
            self._rows = [self.run.run_fault(fault) for fault in self._faults]
        except BaseException as exc:  # noqa: BLE001 - handed to whoever asks for the rows
            self._error = exc
        finally:
            self._done.set()

    def rows(self, timeout: float) -> list[Row]:
        """The faults' rows once they have all run; TimeoutError after `timeout` s, or the run's own error."""
        if not self._done.wait(timeout):
            raise TimeoutError(f"{self.name}: its faults did not finish within {timeout:.0f} s")
        if self._error is not None:
            raise RuntimeError(f"{self.name}: the run failed: {self._error!r}") from self._error
        return self._rows

    def close(self, timeout: float = 600.0) -> None:
        """Waits up to `timeout` s for the thread (a run tears nothing down under a fault still in progress,
        whose settling would restart what it finds stopped), then stops everything the run started."""
        with self._close_lock:
            closing = self._closing
            self._closing = True
        if closing:
            # Another thread tears the run down: return once it is done, not while it is still at it.
            self._closed.wait(timeout)
            return
        try:
            self._done.wait(timeout)
            self.run.teardown()
        finally:
            self._closed.set()

    def close_in_background(self) -> threading.Thread:
        """`close()` in a thread of its own (stopping a stack and its servers takes a while): the caller goes
        on and joins the thread when it must know everything is stopped."""
        closer = threading.Thread(target=self.close, name=f"{self.name}-close", daemon=True)
        closer.start()
        return closer
