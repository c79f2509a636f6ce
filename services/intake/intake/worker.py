"""The intake worker: relays the outbox, sweeps staging, turns routing's task events into the senders'
statuses and delivers webhooks.

Run as a module. The outbox relay sends intake's events (directive_registered, directive_revoked,
directive_rejected); the consumer turns routing's task events into the senders' statuses 04, 05 and 06;
the webhook part sends every status to the subscriptions it matches.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from prometheus_client import Counter
from shared.db import make_engine
from shared.envelope import Envelope
from shared.messaging import EventConsumer, PermanentError, Publisher, RelayWorker, Subscription
from shared.naming import events_exchange, queue_name, routing_key
from shared.objectstore import make_store
from shared.objectstore.port import ObjectStore
from shared.outbox import OutboxPublisher, OutboxRelay
from shared.pruning import Pruner
from shared.runtime import Periodic, Worker, run_all, worker_main
from sqlalchemy.engine import Engine

from intake.adapters.references import SqlStagingReferences
from intake.adapters.tables import inbox, outbox
from intake.adapters.webhook_http import TargetPolicy
from intake.settings import SERVICE, Settings
from intake.staging_sweep import SweepResult, sweep_staging_orphans
from intake.status import Department, InvalidTaskEvent, apply_task_event, consumed_queues
from intake.webhooks import WebhookDeliverer, WebhookWorker

log = logging.getLogger(__name__)

STAGING_ORPHANS_REMOVED = Counter(
    "docroute_intake_staging_orphans_removed_total",
    "Staged uploads no directive referenced, removed by the staging sweep.",
)
STAGING_ORPHAN_BYTES_REMOVED = Counter(
    "docroute_intake_staging_orphan_bytes_removed_total", "Bytes of the staged uploads the sweep removed."
)


def consumed_queue_names() -> list[str]:
    return [queue_name(SERVICE, source, event) for source, event in consumed_queues()]


def subscriptions(engine: Engine, department: Department) -> list[Subscription]:
    """One queue per routing task event, named intake.routing.<event>; each claimed in the inbox."""

    def handler(queue: str) -> Callable[[Envelope], None]:
        def handle(envelope: Envelope) -> None:
            try:
                apply_task_event(envelope, engine=engine, consumer=queue, department=department)
            except InvalidTaskEvent as exc:
                raise PermanentError(str(exc)) from exc

        return handle

    return [
        Subscription(
            queue=queue_name(SERVICE, source, event),
            exchange=events_exchange(source),
            routing_key=routing_key(source, event, 1),
            handler=handler(queue_name(SERVICE, source, event)),
        )
        for source, event in consumed_queues()
    ]


class IntakeWorker:
    """Relays outbox rows with publisher confirms, sweeps orphan staged uploads, consumes routing's task
    events and delivers webhooks, until stopped."""

    def __init__(
        self,
        settings: Settings,
        *,
        engine: Engine | None = None,
        publisher: OutboxPublisher | None = None,
        store: ObjectStore | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        idle_sleep: float = 0.2,
        max_backoff: float = 5.0,
    ) -> None:
        self.settings = settings
        self.engine = engine or make_engine(settings.database_url)
        self.store = store or make_store(settings.common)
        self.clock = clock
        self.publisher = publisher or Publisher(
            settings.common.amqp_url, confirm_timeout=settings.common.publish_confirm_timeout
        )
        self.max_backoff = max_backoff
        self.relay = OutboxRelay(
            self.engine, outbox, self.publisher, idle_sleep=idle_sleep, max_backoff=max_backoff, name=SERVICE
        )
        self.pruner = Pruner(SERVICE, self.engine, outbox, inbox, settings.common.pruning, clock=clock)
        closed_loop = settings.closed_loop
        self.department = closed_loop.department(settings.organisation)
        self.deliverer = WebhookDeliverer(
            self.engine,
            sender=self.department.organ,
            policy=TargetPolicy(
                production=settings.common.is_production,
                allowed=closed_loop.webhook_allow_networks,
                timeout=closed_loop.webhook_timeout,
                max_response_bytes=closed_loop.webhook_max_response_bytes,
            ),
            retry=closed_loop.retry_policy,
            secrets=closed_loop.secret_box,
            batch=closed_loop.webhook_batch,
        )

    def sweep_round(self) -> SweepResult:
        """One staging sweep; counts and logs what it removed."""
        result = sweep_staging_orphans(
            store=self.store,
            bucket=self.settings.staging_bucket,
            references=SqlStagingReferences(self.engine),
            older_than=timedelta(seconds=self.settings.staging_orphan_seconds),
            now=self.clock(),
        )
        STAGING_ORPHANS_REMOVED.inc(len(result.removed))
        STAGING_ORPHAN_BYTES_REMOVED.inc(result.removed_bytes)
        if result.removed or result.failed:
            log.info(
                "staging sweep removed %d orphan upload(s), %d bytes, older than %d s",
                len(result.removed),
                result.removed_bytes,
                self.settings.staging_orphan_seconds,
                extra={
                    "bucket": self.settings.staging_bucket,
                    "removed_keys": list(result.removed[:20]),
                    "failed_keys": list(result.failed[:20]),
                    "listed": result.listed,
                },
            )
        return result

    def run(self, stop: threading.Event) -> None:
        common = self.settings.common
        relay = RelayWorker(
            self.relay,
            common.amqp_url,
            delivery_limit=common.consumer_delivery_limit,
            timeout=common.publish_confirm_timeout,
            max_backoff=self.max_backoff,
            service=SERVICE,
        )
        sweep = Periodic("staging sweep", self.sweep_round, self.settings.staging_sweep_interval)
        consumer = _Consuming(
            EventConsumer(
                common.amqp_url,
                subscriptions(self.engine, self.department),
                delivery_limit=common.consumer_delivery_limit,
            )
        )
        webhooks = WebhookWorker(self.deliverer, interval=self.settings.closed_loop.webhook_poll_interval)
        pruning = Periodic("outbox and inbox pruning", self.pruner.round, common.pruning.interval_seconds)
        parts: list[Worker] = [relay, sweep, consumer, webhooks, pruning]
        run_all(parts, stop)

    def close(self) -> None:
        close = getattr(self.publisher, "close", None)
        if callable(close):
            close()
        self.engine.dispose()


class _Consuming:
    def __init__(self, consumer: EventConsumer) -> None:
        self.consumer = consumer

    def run(self, stop: threading.Event) -> None:
        self.consumer.run(stop)


def build_worker(settings: Settings) -> IntakeWorker:
    return IntakeWorker(settings)


def main() -> None:
    worker_main(SERVICE, Settings.from_env, build_worker)


if __name__ == "__main__":
    main()
