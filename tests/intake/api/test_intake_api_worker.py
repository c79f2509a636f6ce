"""The intake worker: relays the outbox on the in-process memory:// transport; refuses bad settings."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

from intake.worker import IntakeWorker
from intake_testing import IntakeApp, sample
from kombu import Connection, Exchange, Queue


def test_the_worker_relays_registered_directives_on_memory_transport(intake: IntakeApp) -> None:
    created = intake.post_json(sample("1393-CVT-CL")).get_json()
    with Connection("memory://") as conn:
        channel = conn.channel()
        exchange = Exchange("intake.events", type="topic", durable=True)
        queue = Queue("test.intake.directive_registered", exchange=exchange, routing_key="intake.#")(channel)
        exchange(channel).declare()
        queue.declare()
        worker = IntakeWorker(intake.deps.settings, engine=intake.deps.engine, idle_sleep=0.02)
        stop = threading.Event()
        thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
        thread.start()
        try:
            deadline = time.monotonic() + 10
            message = None
            while message is None and time.monotonic() < deadline:
                message = queue.get(no_ack=True)
                time.sleep(0.02)
        finally:
            stop.set()
            thread.join(timeout=5)
        assert message is not None
        envelope = json.loads(message.body)
        assert envelope["payload"]["directive_id"] == created["id"]
        assert not thread.is_alive()


def test_the_worker_stops_with_a_one_line_error_on_bad_settings() -> None:
    env = {**os.environ, "DOCROUTE_AMQP_URL": "ftp://broker", "DOCROUTE_DATA_DIR": "/tmp/intake-worker-test"}
    result = subprocess.run(
        [sys.executable, "-m", "intake.worker"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "DOCROUTE_AMQP_URL" in lines[0]
