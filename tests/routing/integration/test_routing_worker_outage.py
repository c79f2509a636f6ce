"""A PostgreSQL outage under `python -m routing.worker`: it pauses (readiness 503, gauge up), routes the whole
backlog once the database is back, and dead-letters nothing."""

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
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
from shared.messaging import Publisher, declare_consumer_queue, list_dlq

from chaos.proxy import TcpProxy

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
SAMPLES = ("1393-CVT-CL.json", "120-KH-BCD.json", "171-CV-BTGTU.json")
BACKLOG = 21
OUTAGE = 12.0  # past the longest pause between probes (10 s)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(predicate, timeout: float, what: str, log: Path):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}\n{log.read_text()[-3000:]}")


def readiness(port: int) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as refused:
        return refused.code, json.loads(refused.read())
    except OSError:
        return 0, {}


def paused_consumers(port: int) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as answer:
        text = answer.read().decode()
    prefix = f'docroute_consumer_paused{{dependency="database",queue="{DIRECTIVE_REGISTERED_QUEUE}"}} '
    return sum(float(line[len(prefix) :]) for line in text.splitlines() if line.startswith(prefix))


def test_a_database_outage_pauses_the_worker_and_every_directive_is_routed_once_after_it(
    tmp_path, pg_url, amqp_vhost_factory
):
    amqp_url = amqp_vhost_factory()
    app = build_routing_app(tmp_path, pg_url, amqp_url)
    app.load_samples()
    clerk = app.auth("clerk")
    events = [registered_event(SAMPLES[i % 3], arrival_number=i + 1) for i in range(BACKLOG)]
    expected: dict[str, set[str]] = {}
    for event in events:
        plan = app.client.post("/v1/rules:evaluate", json=event.payload["metadata"], headers=clerk).get_json()
        expected[event.payload["directive_id"]] = {x["unit"] for x in plan["tasks"]}
    total = sum(len(units) for units in expected.values())
    with Connection(amqp_url) as conn:
        declare_consumer_queue(
            conn, DIRECTIVE_REGISTERED_QUEUE, DIRECTIVE_REGISTERED_EXCHANGE, DIRECTIVE_REGISTERED_KEY
        )

    url = sa.make_url(pg_url)
    metrics_port = free_port()
    log = tmp_path / "worker.log"
    engine = app.deps.engine
    with TcpProxy((url.host or "127.0.0.1", url.port or 5432)) as proxy:
        proxied = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
        env = {k: v for k, v in os.environ.items() if not k.startswith("DOCROUTE_")} | {
            "DOCROUTE_DATA_DIR": str(tmp_path),
            "DOCROUTE_JWT_SECRET": SECRET,
            "DOCROUTE_AMQP_URL": amqp_url,
            "DOCROUTE_ROUTING_DATABASE_URL": proxied,
            "DOCROUTE_METRICS_PORT": str(metrics_port),
        }
        with log.open("ab") as out:
            worker = subprocess.Popen(
                [sys.executable, "-m", "routing.worker"],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        try:
            wait_for(lambda: readiness(metrics_port)[0] == 200, 60, "the worker to start", log)
            proxy.refuse()  # PostgreSQL unreachable: open connections dropped, new ones refused
            went_down = time.monotonic()
            with Publisher(amqp_url) as publisher:
                for event in events:
                    publisher.publish(
                        exchange=DIRECTIVE_REGISTERED_EXCHANGE,
                        routing_key=DIRECTIVE_REGISTERED_KEY,
                        body=event.to_bytes(),
                        message_id=event.id,
                    )
            _, body = wait_for(
                lambda: (r := readiness(metrics_port))[0] == 503 and r, 30, "readiness to report it", log
            )
            assert "database" in body["checks"], body
            assert paused_consumers(metrics_port) >= 1
            wait_for(lambda: time.monotonic() - went_down >= OUTAGE, OUTAGE + 5, "the outage to last", log)
            proxy.restore()

            def routed() -> bool:
                with engine.connect() as conn:
                    return conn.execute(sa.select(sa.func.count()).select_from(t.tasks)).scalar_one() == total

            wait_for(routed, 60, "every task", log)
            wait_for(lambda: readiness(metrics_port)[0] == 200, 30, "readiness to recover", log)
            assert paused_consumers(metrics_port) == 0
        finally:
            worker.terminate()
            try:
                worker.wait(20)
            except subprocess.TimeoutExpired:
                worker.kill()

    with engine.connect() as conn:
        rows = conn.execute(sa.select(t.tasks.c.directive_id, t.tasks.c.unit)).all()
    assert Counter((r.directive_id, r.unit) for r in rows).most_common(1)[0][1] == 1
    assert {d: {r.unit for r in rows if r.directive_id == d} for d in expected} == expected
    assert list_dlq(amqp_url, DIRECTIVE_REGISTERED_QUEUE, 10) == []
    text = log.read_text()
    assert "consumer paused: database unavailable" in text
    assert "consumer resumed after" in text
