"""Retry pacing: exponential and capped delays, and the bounded count of failures per message."""

from __future__ import annotations

from docroute_unit.backoff import Backoff, FailureTracker


def test_delay_doubles_and_is_capped() -> None:
    backoff = Backoff(base=0.5, cap=3.0, jitter=False)
    assert [backoff.delay(n) for n in range(0, 6)] == [0.0, 0.5, 1.0, 2.0, 3.0, 3.0]
    assert backoff.delay(10_000) == 3.0


def test_jitter_keeps_delay_between_half_and_full() -> None:
    backoff = Backoff(base=1.0, cap=30.0)
    assert backoff.delay(3, rand=lambda: 0.0) == 2.0
    assert backoff.delay(3, rand=lambda: 1.0) == 4.0
    assert 2.0 <= backoff.delay(3) <= 4.0


def test_failures_are_counted_per_message_and_cleared_on_success() -> None:
    tracker = FailureTracker(max_failures=3)
    assert tracker.record("m1") == 1
    assert tracker.record("m2") == 1
    assert tracker.record("m1") == 2
    assert not tracker.exhausted(2)
    assert tracker.exhausted(tracker.record("m1"))
    tracker.clear("m1")
    assert tracker.record("m1") == 1


def test_broker_delivery_count_carries_the_count_across_restarts() -> None:
    tracker = FailureTracker(max_failures=5)
    # A fresh process sees a message the broker already delivered four times.
    assert tracker.record("m1", delivery_count=4) == 5
    assert tracker.exhausted(5)


def test_tracker_is_bounded() -> None:
    tracker = FailureTracker(max_failures=5, capacity=2)
    tracker.record("a")
    tracker.record("b")
    tracker.record("c")
    assert tracker.record("a") == 1  # forgotten, counted afresh
