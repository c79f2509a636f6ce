"""The routing worker: outbox relay, directive_registered consumer, overdue and lease-expiry schedulers."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from marshmallow import ValidationError
from shared.db import make_engine
from shared.envelope import Envelope
from shared.messaging import (
    DATABASE,
    EventConsumer,
    PermanentError,
    Publisher,
    Subscription,
    database_probe,
    wait_for_topology,
)
from shared.outbox import OutboxRelay
from shared.pruning import Pruner
from shared.runtime import Periodic, Worker, run_all, worker_main
from sqlalchemy.engine import Engine

from routing import deadlines, dispatch, ledger, lifecycle, units
from routing.adapters import tables as t
from routing.adapters.unit_queue import KombuUnitQueues
from routing.api.deps import load_calendar
from routing.domain.calendar import WorkingCalendar
from routing.messages import (
    DIRECTIVE_REGISTERED_EXCHANGE,
    DIRECTIVE_REGISTERED_KEY,
    DIRECTIVE_REGISTERED_QUEUE,
    DIRECTIVE_REJECTED_KEY,
    DIRECTIVE_REJECTED_QUEUE,
    DIRECTIVE_REPLACED_KEY,
    DIRECTIVE_REPLACED_QUEUE,
    DIRECTIVE_REVOKED_KEY,
    DIRECTIVE_REVOKED_QUEUE,
    DIRECTIVE_UPDATED_KEY,
    DIRECTIVE_UPDATED_QUEUE,
    validate_directive_registered,
    validate_directive_rejected,
    validate_directive_replaced,
    validate_directive_revoked,
    validate_directive_updated,
)
from routing.metrics import TASK_QUEUE_DEPTH, TASKS_OVERDUE, UnitGauge
from routing.settings import Settings

log = logging.getLogger(__name__)


class ConsumerWorker:
    def __init__(self, consumer: EventConsumer) -> None:
        self.consumer = consumer

    def run(self, stop: threading.Event) -> None:
        self.consumer.run(stop)


def checked(envelope: Envelope, validate: Callable[[dict[str, Any]], Any], kind: str) -> None:
    """The event's payload as its contract says, or PermanentError (a malformed event goes to the DLQ)."""
    try:
        validate(envelope.payload)
    except ValidationError as exc:
        raise PermanentError(f"unusable {kind} payload: {exc.messages}") from exc


def directive_handler(
    engine: Engine, calendar: WorkingCalendar, reference: dispatch.Reference | None = None
) -> Callable[[Envelope], None]:
    """`reference`: the process's copy of units and rules, shared by its consumers (a new one if None)."""
    reference = reference if reference is not None else dispatch.reference_cache()

    def handle(envelope: Envelope) -> None:
        checked(envelope, validate_directive_registered, "directive_registered")
        created = dispatch.route_directive(envelope, engine=engine, calendar=calendar, reference=reference)
        log.info("directive %s routed: %d task(s)", envelope.payload.get("directive_id"), len(created))

    return handle


def revocation_handler(engine: Engine) -> Callable[[Envelope], None]:
    def handle(envelope: Envelope) -> None:
        checked(envelope, validate_directive_revoked, "directive_revoked")
        cancelled = lifecycle.revoke_directive(envelope, engine=engine)
        log.info(
            "directive %s revoked: %d task(s) cancelled", envelope.payload.get("directive_id"), len(cancelled)
        )

    return handle


def rejection_handler(engine: Engine) -> Callable[[Envelope], None]:
    def handle(envelope: Envelope) -> None:
        checked(envelope, validate_directive_rejected, "directive_rejected")
        cancelled = lifecycle.reject_directive(envelope, engine=engine)
        log.info(
            "directive %s refused: %d task(s) cancelled", envelope.payload.get("directive_id"), len(cancelled)
        )

    return handle


def update_handler(
    engine: Engine, calendar: WorkingCalendar, reference: dispatch.Reference | None = None
) -> Callable[[Envelope], None]:
    def handle(envelope: Envelope) -> None:
        checked(envelope, validate_directive_updated, "directive_updated")
        done = lifecycle.update_directive(envelope, engine=engine, calendar=calendar, reference=reference)
        log.info(
            "directive %s updated to revision %s: %d due date(s) moved, %d task(s) added, %d cancelled, "
            "%d unit(s) told",
            envelope.payload.get("directive_id"),
            envelope.payload.get("revision"),
            len(done.moved),
            len(done.added),
            len(done.cancelled),
            len(done.told),
        )

    return handle


def replacement_handler(engine: Engine) -> Callable[[Envelope], None]:
    def handle(envelope: Envelope) -> None:
        checked(envelope, validate_directive_replaced, "directive_replaced")
        cancelled = lifecycle.replace_directive(envelope, engine=engine)
        log.info(
            "directive %s replaced by %s: %d task(s) cancelled",
            envelope.payload.get("directive_id"),
            (envelope.payload.get("replacement") or {}).get("directive_id"),
            len(cancelled),
        )

    return handle


def then(handle: Callable[[Envelope], None], after: Callable[[], None]) -> Callable[[Envelope], None]:
    """`handle`, then `after` once it returned (its transaction committed): e.g. wake the outbox relay."""

    def handle_then(envelope: Envelope) -> None:
        handle(envelope)
        after()

    return handle_then


class RoutingWorker:
    """Everything the routing worker runs, in threads, stopping together."""

    def __init__(self, settings: Settings) -> None:
        common = settings.common
        self.settings = settings
        self.engine = make_engine(settings.database_url)
        self.calendar = load_calendar(settings.holidays_file)
        self.queues = KombuUnitQueues(common.amqp_url, delivery_limit=common.consumer_delivery_limit)
        self.publisher = Publisher(common.amqp_url, confirm_timeout=common.publish_confirm_timeout)
        # Woken by this process's handlers and rounds after each commit: their messages go out at once,
        # without the relay polling the table every few milliseconds to find them.
        self.relay = OutboxRelay(
            self.engine, t.outbox, self.publisher, batch_size=500, name="routing", wakeable=True
        )
        wake = self.relay.wake
        # Units and rules, read again only after they changed; one copy for all the consumers below.
        self.reference = dispatch.reference_cache()
        # Several consumers (own connections, prefetch each) keep routing ahead of a burst; the inbox
        # claim makes a directive delivered twice route once whichever consumer gets it.
        self.consumers = [
            EventConsumer(
                common.amqp_url,
                [
                    Subscription(
                        DIRECTIVE_REGISTERED_QUEUE,
                        DIRECTIVE_REGISTERED_EXCHANGE,
                        DIRECTIVE_REGISTERED_KEY,
                        then(directive_handler(self.engine, self.calendar, self.reference), wake),
                    ),
                    Subscription(
                        DIRECTIVE_REVOKED_QUEUE,
                        DIRECTIVE_REGISTERED_EXCHANGE,
                        DIRECTIVE_REVOKED_KEY,
                        then(revocation_handler(self.engine), wake),
                    ),
                    Subscription(
                        DIRECTIVE_REJECTED_QUEUE,
                        DIRECTIVE_REGISTERED_EXCHANGE,
                        DIRECTIVE_REJECTED_KEY,
                        then(rejection_handler(self.engine), wake),
                    ),
                    Subscription(
                        DIRECTIVE_UPDATED_QUEUE,
                        DIRECTIVE_REGISTERED_EXCHANGE,
                        DIRECTIVE_UPDATED_KEY,
                        then(update_handler(self.engine, self.calendar, self.reference), wake),
                    ),
                    Subscription(
                        DIRECTIVE_REPLACED_QUEUE,
                        DIRECTIVE_REGISTERED_EXCHANGE,
                        DIRECTIVE_REPLACED_KEY,
                        then(replacement_handler(self.engine), wake),
                    ),
                ],
                delivery_limit=common.consumer_delivery_limit,
                prefetch_count=settings.consumer_prefetch,
                # While the database is down the consumers pause (no delivery counted) and probe it.
                probes={DATABASE: database_probe(self.engine)},
            )
            for _ in range(settings.consumers_for(self.engine.dialect.name))
        ]
        self.consumer = self.consumers[0]
        self.pruner = Pruner("routing", self.engine, t.outbox, t.inbox, common.pruning)
        self.overdue_gauge = UnitGauge(TASKS_OVERDUE)
        self.depth_gauge = UnitGauge(TASK_QUEUE_DEPTH)

    def prepare(self) -> None:
        """Task messages are published mandatory, so every unit queue must exist before the relay runs."""
        units.ensure_unit_queues(engine=self.engine, queues=self.queues)

    def overdue_round(self) -> None:
        """Marks newly overdue tasks, then sets docroute_tasks_overdue from one GROUP BY."""
        now = ledger.utcnow()
        deadlines.scan_overdue(engine=self.engine, now=now)
        self.relay.wake()
        self.overdue_gauge.update(deadlines.overdue_by_unit(engine=self.engine, now=now))

    def lease_round(self) -> None:
        units.ensure_unit_queues(engine=self.engine, queues=self.queues)
        deadlines.expire_leases(engine=self.engine)
        self.relay.wake()

    def depth_round(self) -> None:
        """Sets docroute_task_queue_depth from passive declares of every unit's queue."""
        self.depth_gauge.update(self.queues.depths(units.unit_codes(engine=self.engine)))

    def parts(self) -> list[Worker]:
        return [
            self.relay,
            *(ConsumerWorker(consumer) for consumer in self.consumers),
            Periodic("overdue scan", self.overdue_round, self.settings.overdue_scan_seconds),
            Periodic("lease expiry", self.lease_round, self.settings.lease_scan_seconds),
            Periodic("queue depth", self.depth_round, self.settings.lease_scan_seconds),
            Periodic(
                "outbox and inbox pruning", self.pruner.round, self.settings.common.pruning.interval_seconds
            ),
        ]

    def run(self, stop: threading.Event) -> None:
        common = self.settings.common
        if not wait_for_topology(
            common.amqp_url,
            stop,
            delivery_limit=common.consumer_delivery_limit,
            timeout=common.publish_confirm_timeout,
            service="routing",
        ):
            return
        try:
            self.prepare()
        except Exception:
            log.exception("could not declare the unit queues now; the lease round retries")
        try:
            run_all(self.parts(), stop)
        finally:
            self.publisher.close()
            self.queues.close()
            self.engine.dispose()


def build_worker(settings: Settings) -> RoutingWorker:
    return RoutingWorker(settings)


def main() -> None:
    worker_main("routing", Settings.from_env, build_worker)


if __name__ == "__main__":
    main()
