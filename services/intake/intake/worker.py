"""The intake worker: relays the outbox (directive_registered events) to RabbitMQ; run as a module."""

from __future__ import annotations

import logging
import threading

from shared.db import make_engine
from shared.messaging import Publisher, RelayWorker
from shared.outbox import OutboxPublisher, OutboxRelay
from shared.runtime import worker_main
from sqlalchemy.engine import Engine

from intake.adapters.tables import outbox
from intake.settings import SERVICE, Settings

log = logging.getLogger(__name__)


class IntakeWorker:
    """Declares the broker topology, then relays outbox rows with publisher confirms until stopped."""

    def __init__(
        self,
        settings: Settings,
        *,
        engine: Engine | None = None,
        publisher: OutboxPublisher | None = None,
        idle_sleep: float = 0.2,
        max_backoff: float = 5.0,
    ) -> None:
        self.settings = settings
        self.engine = engine or make_engine(settings.database_url)
        self.publisher = publisher or Publisher(
            settings.common.amqp_url, confirm_timeout=settings.common.publish_confirm_timeout
        )
        self.max_backoff = max_backoff
        self.relay = OutboxRelay(
            self.engine, outbox, self.publisher, idle_sleep=idle_sleep, max_backoff=max_backoff, name=SERVICE
        )

    def run(self, stop: threading.Event) -> None:
        common = self.settings.common
        RelayWorker(
            self.relay,
            common.amqp_url,
            delivery_limit=common.consumer_delivery_limit,
            timeout=common.publish_confirm_timeout,
            max_backoff=self.max_backoff,
            service=SERVICE,
        ).run(stop)

    def close(self) -> None:
        close = getattr(self.publisher, "close", None)
        if callable(close):
            close()
        self.engine.dispose()


def build_worker(settings: Settings) -> IntakeWorker:
    return IntakeWorker(settings)


def main() -> None:
    worker_main(SERVICE, Settings.from_env, build_worker)


if __name__ == "__main__":
    main()
