"""The setting of routing's worker process tests (kill -9, database outage, SIGTERM drain): a routing app on a
fresh PostgreSQL database and RabbitMQ vhost with the sample units and rules loaded, directive_registered
events to publish, `python -m routing.worker` subprocesses on the same database and broker (stopped at the
end of the test if the test did not), and the checks every such test ends with."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from kombu import Connection
from routing.adapters import tables as t
from routing.messages import (
    DIRECTIVE_REGISTERED_EXCHANGE,
    DIRECTIVE_REGISTERED_KEY,
    DIRECTIVE_REGISTERED_QUEUE,
)
from routing_testkit import SECRET, RoutingApp, build_routing_app, registered_event
from shared.envelope import Envelope
from shared.messaging import Publisher, declare_consumer_queue

ROOT = Path(__file__).resolve().parents[3]
SAMPLE_DIRECTIVES = ("1393-CVT-CL.json", "120-KH-BCD.json", "171-CV-BTGTU.json")


@dataclass
class WorkerBench:
    """One routing deployment under test: its app (in process), its database, broker and worker logs."""

    app: RoutingApp
    db_url: str
    amqp_url: str
    data_dir: Path
    log: Path
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def engine(self) -> Any:
        return self.app.deps.engine

    def events(self, count: int) -> list[Envelope]:
        """`count` registered directives, the three samples in turn, arrival numbers 1…count."""
        return [registered_event(SAMPLE_DIRECTIVES[i % 3], arrival_number=i + 1) for i in range(count)]

    def expected_units(self, events: Sequence[Envelope]) -> dict[str, set[str]]:
        """The units each directive must reach, as the rules say (POST /v1/rules:evaluate)."""
        clerk = self.app.auth("clerk")
        expected: dict[str, set[str]] = {}
        for event in events:
            plan = self.app.client.post(
                "/v1/rules:evaluate", json=event.payload["metadata"], headers=clerk
            ).get_json()
            expected[event.payload["directive_id"]] = {x["unit"] for x in plan["tasks"]}
        return expected

    def publish(self, events: Sequence[Envelope]) -> None:
        """Publishes the events as intake's relay would (their ids as message ids)."""
        with Publisher(self.amqp_url) as publisher:
            for event in events:
                publisher.publish(
                    exchange=DIRECTIVE_REGISTERED_EXCHANGE,
                    routing_key=DIRECTIVE_REGISTERED_KEY,
                    body=event.to_bytes(),
                    message_id=event.id,
                )

    def start_worker(self, **env: str) -> subprocess.Popen[bytes]:
        """`python -m routing.worker` on this database and broker (`env` adds or overrides settings)."""
        environ = {k: v for k, v in os.environ.items() if not k.startswith("DOCROUTE_")} | {
            "DOCROUTE_DATA_DIR": str(self.data_dir),
            "DOCROUTE_JWT_SECRET": SECRET,
            "DOCROUTE_AMQP_URL": self.amqp_url,
            "DOCROUTE_ROUTING_DATABASE_URL": self.db_url,
            **env,
        }
        with self.log.open("ab") as out:
            worker = subprocess.Popen(
                [sys.executable, "-m", "routing.worker"],
                cwd=ROOT,
                env=environ,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.workers.append(worker)
        return worker

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else "(no log)"

    def wait_for(
        self,
        check: Callable[[], Any],
        timeout: float,
        what: str,
        worker: subprocess.Popen[bytes] | None = None,
    ) -> Any:
        """Polls `check` until it answers something true (returned); fails with the worker's log on a
        timeout, or at once if `worker` dies meanwhile."""
        deadline = time.monotonic() + timeout
        while True:
            value = check()
            if value:
                return value
            if worker is not None and worker.poll() is not None:
                raise AssertionError(f"the worker died while waiting for {what}:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}:\n{self.log_tail()}")
            time.sleep(0.02)

    def counts(self) -> tuple[int, int]:
        """(tasks, outbox rows not yet published)."""
        with self.engine.connect() as conn:
            tasks = conn.execute(sa.select(sa.func.count()).select_from(t.tasks)).scalar_one()
            unpublished = conn.execute(
                sa.select(sa.func.count()).select_from(t.outbox).where(t.outbox.c.published_at.is_(None))
            ).scalar_one()
        return int(tasks), int(unpublished)

    def assert_routed_once(self, expected: dict[str, set[str]]) -> list[Any]:
        """Every directive has a task for exactly the units the rules name, none twice; the task rows."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(t.tasks.c.id, t.tasks.c.directive_id, t.tasks.c.unit)).all()
        assert rows and Counter((r.directive_id, r.unit) for r in rows).most_common(1)[0][1] == 1
        assert {d: {r.unit for r in rows if r.directive_id == d} for d in expected} == expected
        return list(rows)

    @staticmethod
    def stop(worker: subprocess.Popen[bytes], grace: float = 20) -> int | None:
        """SIGTERM, then SIGKILL if it overstays `grace` seconds; its exit code (None if it had to be
        killed)."""
        if worker.poll() is not None:
            return worker.returncode
        worker.send_signal(signal.SIGTERM)
        try:
            return worker.wait(grace)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait(10)
            return None


@pytest.fixture
def worker_bench(
    tmp_path: Path, pg_url: str, amqp_vhost_factory: Callable[..., str]
) -> Iterator[WorkerBench]:
    amqp_url = amqp_vhost_factory()
    app = build_routing_app(tmp_path, pg_url, amqp_url)
    app.load_samples()
    with Connection(amqp_url) as conn:
        declare_consumer_queue(
            conn, DIRECTIVE_REGISTERED_QUEUE, DIRECTIVE_REGISTERED_EXCHANGE, DIRECTIVE_REGISTERED_KEY
        )
    bench = WorkerBench(app, pg_url, amqp_url, tmp_path, tmp_path / "worker.log")
    try:
        yield bench
    finally:
        for worker in bench.workers:
            WorkerBench.stop(worker, grace=15)
        app.deps.engine.dispose()
