"""The intake worker: relays the outbox (directive_registered events) to RabbitMQ; run as a module."""

from __future__ import annotations

import logging
import sys
import threading

from kombu import Connection
from shared.db import make_engine
from shared.logs import configure_logging
from shared.messaging import Publisher, declare_events_exchange
from shared.outbox import OutboxPublisher, OutboxRelay
from shared.runtime import run_all
from shared.settings import SettingsError
from sqlalchemy.engine import Engine

from intake.adapters.tables import outbox
from intake.settings import SERVICE, Settings

log = logging.getLogger(__name__)


class IntakeWorker:
    """Declares intake.events, then relays outbox rows with publisher confirms until stopped."""

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

    def declare_topology(self) -> None:
        timeout = self.settings.common.publish_confirm_timeout
        with Connection(self.settings.common.amqp_url, connect_timeout=timeout) as conn:
            declare_events_exchange(conn, SERVICE)

    def run(self, stop: threading.Event) -> None:
        backoff = 0.2
        # The relay publishes to intake.events, which must exist first; while the broker is down we wait
        # here (submissions keep being accepted into the outbox meanwhile).
        while not stop.is_set():
            try:
                self.declare_topology()
                break
            except Exception as exc:  # noqa: BLE001 - any broker failure means "try again later"
                log.warning("cannot declare %s.events yet (%s); retrying in %.1fs", SERVICE, exc, backoff)
                stop.wait(backoff)
                backoff = min(backoff * 2, self.max_backoff)
        if not stop.is_set():
            self.relay.run(stop)

    def close(self) -> None:
        close = getattr(self.publisher, "close", None)
        if callable(close):
            close()
        self.engine.dispose()


def build_worker(settings: Settings) -> IntakeWorker:
    return IntakeWorker(settings)


def main() -> None:
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"intake worker: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    configure_logging(settings.common.log_level)
    worker = build_worker(settings)
    log.info("intake worker started")
    try:
        run_all([worker])
    finally:
        worker.close()


if __name__ == "__main__":
    main()
