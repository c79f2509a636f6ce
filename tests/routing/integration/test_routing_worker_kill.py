"""Crash safety: SIGKILL `python -m routing.worker` mid-flow, restart it, and find every task exactly once."""

import signal
from collections import Counter

import pytest

pytestmark = pytest.mark.integration

N = 12


def test_kill_9_mid_flow_loses_and_duplicates_nothing(worker_bench):
    bench = worker_bench
    events = bench.events(N)
    expected = bench.expected_units(events)
    total = sum(len(v) for v in expected.values())
    # One redelivered event (same id) must change nothing.
    bench.publish([*events, events[0]])

    worker = bench.start_worker(DOCROUTE_LEASE_SCAN_SECONDS="0.2")
    bench.wait_for(lambda: bench.counts()[0] > 0, 30, "the first tasks", worker)
    killed_at = bench.counts()
    worker.send_signal(signal.SIGKILL)
    worker.wait(10)
    assert 0 < killed_at[0] < total  # killed mid-flow, not after the fact
    worker = bench.start_worker(DOCROUTE_LEASE_SCAN_SECONDS="0.2")
    bench.wait_for(lambda: bench.counts() == (total, 0), 30, "every task, relayed", worker)
    bench.stop(worker)

    rows = bench.assert_routed_once(expected)
    unit_of = {r.id: r.unit for r in rows}

    # Every task is on its unit's queue; a duplicate left by the kill is never offered twice.
    app = bench.app
    offered: Counter[str] = Counter()
    for unit in sorted(set(unit_of.values())):
        while True:
            got = app.client.post(
                f"/v1/units/{unit}/tasks:poll", json={"max": 100}, headers=app.auth("unit", unit)
            ).get_json()
            if not got["items"]:
                break
            for item in got["items"]:
                assert unit_of[item["id"]] == unit
                offered[item["id"]] += 1
    assert set(offered) == set(unit_of) and max(offered.values()) == 1
