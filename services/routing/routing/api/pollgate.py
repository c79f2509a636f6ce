"""Admission of REST long-polls: how many may wait at once per unit and per process, so none starve others."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from shared.problems import Problem


@dataclass
class PollGate:
    """Counts the long-polls waiting in this process.

    A long-poll holds a web thread for up to 30 s. Without a cap one unit token (or a few) could hold every
    thread of a process, and health probes, readiness and every other request would queue behind them. The
    per-process cap keeps the rest of the threads for everything else; the per-unit cap keeps one unit from
    taking the whole share (a unit needs one waiting poll, two to overlap a reconnect).
    """

    per_process: int
    per_unit: int
    retry_after_seconds: int = 2
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _waiting: dict[str, int] = field(default_factory=dict, repr=False)

    def waiting(self) -> dict[str, int]:
        """Long-polls waiting now, by unit code."""
        with self._lock:
            return dict(self._waiting)

    @contextmanager
    def admit(self, unit: str) -> Iterator[None]:
        """Holds a place for `unit`'s long-poll for the duration of the block; a 429 problem when full."""
        with self._lock:
            if self._waiting.get(unit, 0) >= self.per_unit:
                refused = f"unit {unit} already has {self.per_unit} long-poll(s) waiting"
            elif sum(self._waiting.values()) >= self.per_process:
                refused = "every long-poll place of this server process is taken"
            else:
                refused = ""
                self._waiting[unit] = self._waiting.get(unit, 0) + 1
        if refused:
            raise Problem(
                429,
                "Too Many Requests",
                f"{refused}; poll again after {self.retry_after_seconds} s",
                type="too-many-long-polls",
                headers={"Retry-After": str(self.retry_after_seconds)},
            )
        try:
            yield
        finally:
            with self._lock:
                left = self._waiting[unit] - 1
                if left:
                    self._waiting[unit] = left
                else:
                    del self._waiting[unit]
