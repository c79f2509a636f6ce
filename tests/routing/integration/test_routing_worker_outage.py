"""A PostgreSQL outage under `python -m routing.worker`: it pauses (readiness 503, gauge up), routes the whole
backlog once the database is back, and dead-letters nothing."""

import json
import time
import urllib.error
import urllib.request

import pytest
import sqlalchemy as sa
from routing.messages import DIRECTIVE_REGISTERED_QUEUE
from shared.messaging import list_dlq

from chaos.proxy import TcpProxy
from chaos.servers import free_port

pytestmark = pytest.mark.integration

BACKLOG = 21
OUTAGE = 12.0  # past the longest pause between probes (10 s)


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


def test_a_database_outage_pauses_the_worker_and_every_directive_is_routed_once_after_it(worker_bench):
    bench = worker_bench
    events = bench.events(BACKLOG)
    expected = bench.expected_units(events)
    total = sum(len(units) for units in expected.values())
    url = sa.make_url(bench.db_url)
    metrics_port = free_port()
    with TcpProxy((url.host or "127.0.0.1", url.port or 5432)) as proxy:
        proxied = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
        worker = bench.start_worker(
            DOCROUTE_ROUTING_DATABASE_URL=proxied, DOCROUTE_METRICS_PORT=str(metrics_port)
        )
        try:
            bench.wait_for(lambda: readiness(metrics_port)[0] == 200, 60, "the worker to start", worker)
            proxy.refuse()  # PostgreSQL unreachable: open connections dropped, new ones refused
            went_down = time.monotonic()
            bench.publish(events)
            _, body = bench.wait_for(
                lambda: (r := readiness(metrics_port))[0] == 503 and r, 30, "readiness to report it", worker
            )
            assert "database" in body["checks"], body
            assert paused_consumers(metrics_port) >= 1
            bench.wait_for(lambda: time.monotonic() - went_down >= OUTAGE, OUTAGE + 5, "the outage to last")
            proxy.restore()
            bench.wait_for(lambda: bench.counts()[0] == total, 60, "every task", worker)
            bench.wait_for(lambda: readiness(metrics_port)[0] == 200, 30, "readiness to recover", worker)
            assert paused_consumers(metrics_port) == 0
        finally:
            bench.stop(worker)

    bench.assert_routed_once(expected)
    assert list_dlq(bench.amqp_url, DIRECTIVE_REGISTERED_QUEUE, 10) == []
    text = bench.log.read_text()
    assert "consumer paused: database unavailable" in text
    assert "consumer resumed after" in text
