"""Scale-in safety: SIGTERM `python -m routing.worker` while directives are in flight; it stops within the
pod's grace period with exit 0, and every directive is either routed or back on the queue, never both."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml
from kombu import Connection
from routing.adapters import tables as t
from routing.messages import (
    DIRECTIVE_REGISTERED_EXCHANGE,
    DIRECTIVE_REGISTERED_KEY,
    DIRECTIVE_REGISTERED_QUEUE,
)
from routing_testkit import SECRET, build_routing_app, registered_event
from shared.messaging import Publisher, declare_consumer_queue
from shared.naming import dlq_name
from sqlalchemy.engine import Engine

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
SAMPLES = ("1393-CVT-CL.json", "120-KH-BCD.json", "171-CV-BTGTU.json")
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


def wait_until(
    check: Callable[[], bool], timeout: float, what: str, proc: subprocess.Popen[bytes], log: Path
) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert proc.poll() is None, f"worker died while waiting for {what}:\n{log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}:\n{log.read_text()[-3000:]}"
        time.sleep(0.02)


def test_sigterm_drains_within_the_grace_period_and_loses_nothing(
    tmp_path: Path, pg_url: str, amqp_vhost_factory: Callable[..., str]
) -> None:
    grace = grace_period("routing-worker")
    amqp_url = amqp_vhost_factory()
    app = build_routing_app(tmp_path, pg_url, amqp_url)
    app.load_samples()
    engine = app.deps.engine
    events = [registered_event(SAMPLES[i % 3], arrival_number=i + 1) for i in range(N)]
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
    assert queue_state(amqp_url, DIRECTIVE_REGISTERED_QUEUE) == (N, 0)

    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCROUTE_")} | {
        "DOCROUTE_DATA_DIR": str(tmp_path),
        "DOCROUTE_JWT_SECRET": SECRET,
        "DOCROUTE_AMQP_URL": amqp_url,
        "DOCROUTE_ROUTING_DATABASE_URL": pg_url,
    }
    log = tmp_path / "worker.log"

    def start() -> subprocess.Popen[bytes]:
        with log.open("ab") as out:
            return subprocess.Popen(
                [sys.executable, "-m", "routing.worker"],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    worker = start()
    try:
        # In flight: some directives routed, most still queued or prefetched by the worker's consumers.
        wait_until(lambda: routed(engine) >= 5, 60, "the first routed directives", worker, log)
        worker.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        try:
            code = worker.wait(grace)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the worker outlived its {grace}s grace period:\n{log.read_text()[-3000:]}")
        stopped_after = time.monotonic() - signalled
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait(10)
    text = log.read_text()
    assert code == 0, text[-3000:]
    assert "did not stop in time" not in text, text[-3000:]
    assert stopped_after < grace

    done = routed(engine)
    ready, consumers = queue_state(amqp_url, DIRECTIVE_REGISTERED_QUEUE)
    assert 0 < done < N, "stopped mid-flow, not before or after the work"
    # Drained cleanly: every delivery was either handled and acked, or handed back unhandled; nothing
    # handled is also queued again, nothing is held by a consumer, nothing went to the dead-letter queue.
    assert consumers == 0
    assert done + ready == N
    assert queue_state(amqp_url, dlq_name(DIRECTIVE_REGISTERED_QUEUE))[0] == 0

    # A replacement worker (the next pod) routes the rest; each directive exactly once, its tasks relayed.
    worker = start()
    try:
        wait_until(lambda: routed(engine) == N, 300, "the rest of the directives", worker, log)
        wait_until(
            lambda: queue_state(amqp_url, DIRECTIVE_REGISTERED_QUEUE)[0] == 0,
            30,
            "an empty queue",
            worker,
            log,
        )

        def outbox_empty() -> bool:
            with engine.connect() as conn:
                unpublished = conn.execute(
                    sa.select(sa.func.count()).select_from(t.outbox).where(t.outbox.c.published_at.is_(None))
                ).scalar_one()
            return unpublished == 0

        wait_until(outbox_empty, 300, "the outbox relayed", worker, log)
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            assert worker.wait(grace) == 0
        finally:
            if worker.poll() is None:
                worker.kill()
    with engine.connect() as conn:
        ids = conn.execute(sa.select(t.directives.c.id)).scalars().all()
        pairs = conn.execute(
            sa.select(t.tasks.c.directive_id, t.tasks.c.unit, sa.func.count()).group_by(
                t.tasks.c.directive_id, t.tasks.c.unit
            )
        ).all()
    assert sorted(ids) == sorted(e.payload["directive_id"] for e in events)
    assert pairs and max(p[2] for p in pairs) == 1
    assert queue_state(amqp_url, dlq_name(DIRECTIVE_REGISTERED_QUEUE))[0] == 0
