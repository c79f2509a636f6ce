"""Helpers for intake's broker and S3 integration tests: a tap on intake.events, and the S3 environment."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from kombu import Connection, Exchange, Queue
from shared.messaging import declare_events_exchange


class QueueTap:
    """An exclusive queue bound to intake.events: what a consumer service would receive."""

    def __init__(self, amqp_url: str, routing_key: str = "intake.#") -> None:
        self.conn = Connection(amqp_url, connect_timeout=5)
        self.channel = self.conn.channel()
        # Declared the way intake declares it (with its alternate exchange), then only referenced.
        declare_events_exchange(self.conn, "intake")
        exchange = Exchange("intake.events", type="topic", durable=True, no_declare=True)
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


def s3_environ(s3_endpoint: str) -> dict[str, str]:
    return {
        "DOCROUTE_S3_ENDPOINT": s3_endpoint,
        "DOCROUTE_S3_ACCESS_KEY": "testing",
        "DOCROUTE_S3_SECRET_KEY": "testing-secret",
        "DOCROUTE_S3_REGION": "us-east-1",
        "DOCROUTE_STAGING_BUCKET": f"intake-staging-{uuid.uuid4().hex[:10]}",
    }
