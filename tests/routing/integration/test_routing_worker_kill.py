"""Crash safety: SIGKILL `python -m routing.worker` mid-flow, restart it, and find every task exactly once."""

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import sqlalchemy as sa
from kombu import Connection
from routing.adapters import tables as t
from routing.messages import (
    DIRECTIVE_REGISTERED_EXCHANGE,
    DIRECTIVE_REGISTERED_KEY,
    DIRECTIVE_REGISTERED_QUEUE,
)
from routing_testkit import SECRET, build_routing_app, registered_event
from shared.messaging import Publisher, declare_consumer_queue

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
SAMPLES = ("1393-CVT-CL.json", "120-KH-BCD.json", "171-CV-BTGTU.json")
N = 12


def start_worker(env, log: Path) -> subprocess.Popen:
    out = log.open("ab")
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "routing.worker"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    finally:
        out.close()


def counts(engine):
    with engine.connect() as conn:
        tasks = conn.execute(sa.select(sa.func.count()).select_from(t.tasks)).scalar_one()
        unpublished = conn.execute(
            sa.select(sa.func.count()).select_from(t.outbox).where(t.outbox.c.published_at.is_(None))
        ).scalar_one()
    return tasks, unpublished


def test_kill_9_mid_flow_loses_and_duplicates_nothing(tmp_path, pg_url, amqp_vhost_factory):
    amqp_url = amqp_vhost_factory()
    app = build_routing_app(tmp_path, pg_url, amqp_url)
    app.load_samples()
    clerk = app.auth("clerk")
    events = [registered_event(SAMPLES[i % 3], arrival_number=i + 1) for i in range(N)]
    expected: dict[str, set[str]] = {}
    for event in events:
        plan = app.client.post("/v1/rules:evaluate", json=event.payload["metadata"], headers=clerk).get_json()
        expected[event.payload["directive_id"]] = {x["unit"] for x in plan["tasks"]}
    total = sum(len(v) for v in expected.values())

    with Connection(amqp_url) as conn:
        declare_consumer_queue(
            conn, DIRECTIVE_REGISTERED_QUEUE, DIRECTIVE_REGISTERED_EXCHANGE, DIRECTIVE_REGISTERED_KEY
        )
    with Publisher(amqp_url) as publisher:
        for event in events:
            publisher.publish(
                exchange=DIRECTIVE_REGISTERED_EXCHANGE,
                routing_key=DIRECTIVE_REGISTERED_KEY,
                body=event.to_bytes(),
                message_id=event.id,
            )
        # One redelivered event (same id) and one re-sent directive (new id) must change nothing.
        publisher.publish(
            exchange=DIRECTIVE_REGISTERED_EXCHANGE,
            routing_key=DIRECTIVE_REGISTERED_KEY,
            body=events[0].to_bytes(),
            message_id=events[0].id,
        )

    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCROUTE_")} | {
        "DOCROUTE_DATA_DIR": str(tmp_path),
        "DOCROUTE_JWT_SECRET": SECRET,
        "DOCROUTE_AMQP_URL": amqp_url,
        "DOCROUTE_ROUTING_DATABASE_URL": pg_url,
        "DOCROUTE_LEASE_SCAN_SECONDS": "0.2",
    }
    log = tmp_path / "worker.log"
    worker = start_worker(env, log)
    engine = app.deps.engine
    deadline = time.monotonic() + 30
    try:
        while counts(engine)[0] == 0 and time.monotonic() < deadline:
            assert worker.poll() is None, log.read_text()
            time.sleep(0.01)
        killed_at = counts(engine)
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
        assert 0 < killed_at[0] < total  # killed mid-flow, not after the fact
        worker = start_worker(env, log)
        while counts(engine) != (total, 0) and time.monotonic() < deadline:
            assert worker.poll() is None, log.read_text()
            time.sleep(0.05)
        assert counts(engine) == (total, 0), log.read_text()[-3000:]
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(15)
        except subprocess.TimeoutExpired:
            worker.kill()

    with engine.connect() as conn:
        rows = conn.execute(sa.select(t.tasks.c.id, t.tasks.c.directive_id, t.tasks.c.unit)).all()
    assert Counter((r.directive_id, r.unit) for r in rows).most_common(1)[0][1] == 1
    assert {d: {r.unit for r in rows if r.directive_id == d} for d in expected} == expected
    unit_of = {r.id: r.unit for r in rows}

    # Every task is on its unit's queue; a duplicate left by the kill is never offered twice.
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
