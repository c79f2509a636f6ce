"""Fixtures for intake integration tests: the app on PostgreSQL + moto S3, and taps on intake.events."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from intake_testing import IntakeApp, build_intake_app, intake_environ
from kombu import Connection, Exchange, Queue


class QueueTap:
    """An exclusive queue bound to intake.events: what a consumer service would receive."""

    def __init__(self, amqp_url: str, routing_key: str = "intake.#") -> None:
        self.conn = Connection(amqp_url, connect_timeout=5)
        self.channel = self.conn.channel()
        exchange = Exchange("intake.events", type="topic", durable=True)
        exchange(self.channel).declare()
        self.queue = Queue(
            f"test-tap-{uuid.uuid4().hex[:8]}", exchange=exchange, routing_key=routing_key, exclusive=True
        )(self.channel)
        self.queue.declare()

    def get_all(self, count: int, timeout: float = 10.0) -> list[tuple[str, dict[str, Any]]]:
        """(routing key, decoded envelope) of up to `count` messages, polling until they arrived."""
        found: list[tuple[str, dict[str, Any]]] = []
        deadline = time.monotonic() + timeout
        while len(found) < count and time.monotonic() < deadline:
            message = self.queue.get(no_ack=True)
            if message is None:
                time.sleep(0.05)
                continue
            found.append((message.delivery_info["routing_key"], json.loads(message.body)))
        return found

    def close(self) -> None:
        self.conn.release()


@pytest.fixture
def tap_factory() -> Iterator[Callable[[str], QueueTap]]:
    taps: list[QueueTap] = []

    def make(amqp_url: str) -> QueueTap:
        tap = QueueTap(amqp_url)
        taps.append(tap)
        return tap

    yield make
    for tap in taps:
        tap.close()


def s3_environ(s3_endpoint: str) -> dict[str, str]:
    return {
        "DOCROUTE_S3_ENDPOINT": s3_endpoint,
        "DOCROUTE_S3_ACCESS_KEY": "testing",
        "DOCROUTE_S3_SECRET_KEY": "testing-secret",
        "DOCROUTE_S3_REGION": "us-east-1",
        "DOCROUTE_STAGING_BUCKET": f"intake-staging-{uuid.uuid4().hex[:10]}",
    }


@pytest.fixture
def pg_intake(tmp_path: Path, pg_url: str, s3_endpoint: str) -> Iterator[IntakeApp]:
    """The intake app on a fresh PostgreSQL database and moto's S3 server."""
    built = build_intake_app(
        intake_environ(tmp_path, DOCROUTE_INTAKE_DATABASE_URL=pg_url, **s3_environ(s3_endpoint))
    )
    yield built
    built.deps.engine.dispose()
