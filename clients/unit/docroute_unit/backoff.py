"""Retry pacing: capped exponential backoff, and the count of consecutive failures per message."""

from __future__ import annotations

import random
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    """Delay before attempt n+1 after n failures: base * factor**(n-1), capped, with optional jitter."""

    base: float
    cap: float
    factor: float = 2.0
    jitter: bool = True

    def delay(self, failures: int, rand: Callable[[], float] = random.random) -> float:
        if failures < 1:
            return 0.0
        # min() before the power keeps huge failure counts from overflowing a float.
        exponent = min(failures - 1, 64)
        raw = min(self.cap, self.base * self.factor**exponent)
        if not self.jitter:
            return raw
        # "Equal jitter": never less than half the delay, so retries still back off, but spread out so
        # many unit clients restarting with the broker do not reconnect in lockstep.
        return raw / 2 + rand() * raw / 2


class FailureTracker:
    """Consecutive failures per message id, bounded so a stream of failing ids cannot grow it forever."""

    def __init__(self, max_failures: int, capacity: int = 1_000) -> None:
        if max_failures < 1:
            raise ValueError("max_failures must be at least 1")
        self.max_failures = max_failures
        self.capacity = capacity
        self._failures: OrderedDict[str, int] = OrderedDict()

    def record(self, message_id: str, delivery_count: int = 0) -> int:
        """Count one more failure and return the total.

        The broker's delivery count (quorum queues' `x-delivery-count`) is taken into account so the bound
        holds across reconnects and restarts, when the local count starts again from zero.
        """
        failures = max(self._failures.get(message_id, 0), delivery_count) + 1
        self._failures[message_id] = failures
        self._failures.move_to_end(message_id)
        while len(self._failures) > self.capacity:
            self._failures.popitem(last=False)
        return failures

    def exhausted(self, failures: int) -> bool:
        return failures >= self.max_failures

    def clear(self, message_id: str) -> None:
        self._failures.pop(message_id, None)
