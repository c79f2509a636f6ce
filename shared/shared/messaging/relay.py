"""RelayWorker: waits for the broker topology, then relays an outbox until stopped."""

from __future__ import annotations

import threading
from typing import Any

from shared.messaging.topology import wait_for_topology


class RelayWorker:
    """Declares the broker topology (waiting while the broker is away), then relays an outbox until stopped.

    Submissions keep landing in the outbox meanwhile; nothing is published before the consumer queues that
    must receive it exist.
    """

    def __init__(
        self,
        relay: Any,
        amqp_url: str,
        *,
        delivery_limit: int,
        timeout: float = 5.0,
        max_backoff: float = 5.0,
        service: str | None = None,
    ) -> None:
        self.relay = relay
        self.amqp_url = amqp_url
        self.delivery_limit = delivery_limit
        self.timeout = timeout
        self.max_backoff = max_backoff
        # The service whose part of the topology to declare (None: all of it, one user with every right).
        self.service = service

    def run(self, stop: threading.Event) -> None:
        if wait_for_topology(
            self.amqp_url,
            stop,
            delivery_limit=self.delivery_limit,
            timeout=self.timeout,
            max_backoff=self.max_backoff,
            service=self.service,
        ):
            self.relay.run(stop)
