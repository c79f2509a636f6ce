"""Scale-in safety: SIGTERM `python -m routing.worker` while directives are in flight; it stops within the
pod's grace period with exit 0, and every directive is either routed or back on the queue, never both."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml
from kombu import Connection
from routing.adapters import tables as t
from routing.messages import DIRECTIVE_REGISTERED_QUEUE
from shared.naming import dlq_name
from sqlalchemy.engine import Engine

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
# Enough that the worker cannot have routed them all when it is stopped (it routes ~17/s on 2 cores,
# bench/results/latest.md row 2), few enough for a loaded test machine. Waits are bounded, never sleeps.
N = 150


def grace_period(deployment: str) -> int:
    """terminationGracePeriodSeconds of a Deployment in the base manifests: the kubelet's SIGKILL deadline."""
    for doc in yaml.safe_load_all((ROOT / "deploy" / "k8s" / "base" / "routing.yaml").read_text()):
        if doc and doc["kind"] == "Deployment" and doc["metadata"]["name"] == deployment:
            return int(doc["spec"]["template"]["spec"]["terminationGracePeriodSeconds"])
    raise AssertionError(f"no Deployment {deployment}")


def routed(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(t.directives)).scalar_one())


def queue_state(amqp_url: str, queue: str) -> tuple[int, int]:
    """(ready messages, consumers) of a queue, by passive declare."""
    with Connection(amqp_url) as conn:
        ok = conn.default_channel.queue_declare(queue=queue, passive=True)
        return int(ok.message_count), int(ok.consumer_count)


def test_sigterm_drains_within_the_grace_period_and_loses_nothing(worker_bench) -> None:
    bench = worker_bench
    grace = grace_period("routing-worker")
    engine = bench.engine
    events = bench.events(N)
    bench.publish(events)
    assert queue_state(bench.amqp_url, DIRECTIVE_REGISTERED_QUEUE) == (N, 0)

    worker = bench.start_worker()
    # In flight: some directives routed, most still queued or prefetched by the worker's consumers.
    bench.wait_for(lambda: routed(engine) >= 5, 60, "the first routed directives", worker)
    worker.send_signal(signal.SIGTERM)
    signalled = time.monotonic()
    try:
        code = worker.wait(grace)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the worker outlived its {grace}s grace period:\n{bench.log_tail()}")
    stopped_after = time.monotonic() - signalled
    text = bench.log.read_text()
    assert code == 0, text[-3000:]
    assert "did not stop in time" not in text, text[-3000:]
    assert stopped_after < grace

    done = routed(engine)
    ready, consumers = queue_state(bench.amqp_url, DIRECTIVE_REGISTERED_QUEUE)
    assert 0 < done < N, "stopped mid-flow, not before or after the work"
    # Drained cleanly: every delivery was either handled and acked, or handed back unhandled; nothing
    # handled is also queued again, nothing is held by a consumer, nothing went to the dead-letter queue.
    assert consumers == 0
    assert done + ready == N
    assert queue_state(bench.amqp_url, dlq_name(DIRECTIVE_REGISTERED_QUEUE))[0] == 0

    # A replacement worker (the next pod) routes the rest; each directive exactly once, its tasks relayed.
    worker = bench.start_worker()
    bench.wait_for(lambda: routed(engine) == N, 300, "the rest of the directives", worker)
    bench.wait_for(
        lambda: queue_state(bench.amqp_url, DIRECTIVE_REGISTERED_QUEUE)[0] == 0, 30, "an empty queue", worker
    )
    bench.wait_for(lambda: bench.counts()[1] == 0, 300, "the outbox relayed", worker)
    assert bench.stop(worker, grace) == 0
    with engine.connect() as conn:
        ids = conn.execute(sa.select(t.directives.c.id)).scalars().all()
    assert sorted(ids) == sorted(e.payload["directive_id"] for e in events)
    bench.assert_routed_once(bench.expected_units(events))
    assert queue_state(bench.amqp_url, dlq_name(DIRECTIVE_REGISTERED_QUEUE))[0] == 0
