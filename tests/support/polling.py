"""Waiting for a condition, bounded: the one way a test waits for something another thread or process does."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(predicate: Callable[[], object], timeout: float = 10.0, interval: float = 0.02) -> bool:
    """Polls `predicate` until it is truthy; True if it became so within `timeout` seconds, else its last
    answer (checked once more at the deadline). For `assert wait_until(...)`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


def wait_for(predicate: Callable[[], T], timeout: float = 15.0, interval: float = 0.1) -> T:
    """Polls `predicate` until it returns something truthy and returns it; AssertionError after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"condition not reached within {timeout:g} s")
        time.sleep(interval)
