"""The archive worker: event consumers, the outbox relay, the fixity sweep and the audit checkpoint."""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from prometheus_client import Counter, Gauge
from shared.envelope import Envelope
from shared.messaging import (
    DATABASE,
    OBJECT_STORE,
    EventConsumer,
    Probe,
    Publisher,
    RelayWorker,
    Subscription,
    database_probe,
)
from shared.objectstore import StoreLacksCapability
from shared.outbox import OutboxPublisher, OutboxRelay
from shared.pruning import Pruner
from shared.runtime import Periodic, Worker, WorkerFailed, run_all, worker_main

from archive import archiving, fixity, history, messages
from archive import audit as audit_chain
from archive.adapters.db import inbox, outbox
from archive.deps import ArchiveDeps, build_deps
from archive.settings import Settings

log = logging.getLogger(__name__)

FIXITY_CHECKED = Counter("docroute_archive_fixity_checked_total", "Records re-hashed by fixity sweeps.")
FIXITY_FAILED = Counter(
    "docroute_archive_fixity_failed_total", "Records whose fixity check failed in sweeps."
)
FIXITY_LAST_RUN = Gauge("docroute_archive_fixity_last_run_timestamp", "When the last fixity sweep finished.")
AUDIT_ENTRIES = Gauge("docroute_archive_audit_entries", "Audit entries at the last checkpoint.")
AUDIT_CHAIN_OK = Gauge("docroute_archive_audit_chain_ok", "1 when the last audit verification passed.")

# Sweeps run several times per period so a long period's load is spread out; a sweep covers what is due.
SWEEPS_PER_PERIOD = 24
MIN_INTERVAL = 1.0
# EventConsumer's own default, kept for a single consumer.
CONSUMER_PREFETCH = 10


@dataclass
class ConsumerWorker:
    consumer: EventConsumer

    def run(self, stop: threading.Event) -> None:
        self.consumer.run(stop)


def probes(deps: ArchiveDeps) -> dict[str, Probe]:
    """What the consumers probe while paused on an outage: the database and the object store."""
    return {DATABASE: database_probe(deps.engine), OBJECT_STORE: deps.vault.store.ping}


def _then(handler: Callable[[Envelope], None], after: Callable[[], None]) -> Callable[[Envelope], None]:
    def handle(envelope: Envelope) -> None:
        handler(envelope)
        after()

    return handle


def subscriptions(deps: ArchiveDeps, committed: Callable[[], None] | None = None) -> list[Subscription]:
    """One queue per consumed event, named archive.<source>.<event>.

    `committed` is called after each handler that returned (its transaction committed, with any outbox
    rows): the worker's relay is woken so that the events leave now, not at its next poll."""

    def on_directive(envelope: Envelope) -> None:
        archiving.handle_directive_registered(
            envelope, engine=deps.engine, vault=deps.vault, verifier=deps.verifier
        )

    def on_task(envelope: Envelope) -> None:
        history.handle_task_event(envelope, engine=deps.engine, vault=deps.vault, verifier=deps.verifier)

    def on_assigned(envelope: Envelope) -> None:
        history.handle_tasks_assigned(envelope, engine=deps.engine)

    def on_acknowledged(envelope: Envelope) -> None:
        history.handle_tasks_acknowledged(envelope, engine=deps.engine)

    def on_revoked(envelope: Envelope) -> None:
        history.handle_directive_revoked(
            envelope, engine=deps.engine, vault=deps.vault, verifier=deps.verifier
        )

    def on_updated(envelope: Envelope) -> None:
        history.handle_directive_updated(
            envelope, engine=deps.engine, vault=deps.vault, verifier=deps.verifier
        )

    def on_replaced(envelope: Envelope) -> None:
        history.handle_directive_replaced(
            envelope, engine=deps.engine, vault=deps.vault, verifier=deps.verifier
        )

    special = {
        messages.DIRECTIVE_REGISTERED: on_directive,
        messages.TASKS_ASSIGNED: on_assigned,
        messages.TASKS_ACKNOWLEDGED: on_acknowledged,
        messages.DIRECTIVE_REVOKED: on_revoked,
        messages.DIRECTIVE_UPDATED: on_updated,
        messages.DIRECTIVE_REPLACED: on_replaced,
    }
    return [
        Subscription(
            queue=messages.consumer_queue(source, event),
            exchange=f"{source}.events",
            routing_key=messages.source_routing_key(source, event),
            handler=_then(special.get((source, event), on_task), committed)
            if committed is not None
            else special.get((source, event), on_task),
        )
        for source, event in messages.CONSUMED
    ]


@dataclass
class ArchiveWorker:
    """Everything the archive runs in the background, as one Worker."""

    settings: Settings
    deps: ArchiveDeps
    publisher: OutboxPublisher
    parts: list[Worker] = field(default_factory=list)
    # The newest locked checkpoint this worker has seen, and the last break it announced.
    checkpoint_reference: audit_chain.LockedCheckpoint | None = None
    announced_break: str | None = None
    # Whether this worker has indexed the locked checkpoints a stopped writer left without a row.
    checkpoints_indexed: bool = False

    def fixity_round(self) -> None:
        summary = fixity.run_fixity_sweep(
            engine=self.deps.engine, vault=self.deps.vault, period_seconds=self.settings.fixity_period_seconds
        )
        FIXITY_CHECKED.inc(summary.checked)
        FIXITY_FAILED.inc(summary.failed)
        FIXITY_LAST_RUN.set_to_current_time()

    def checkpoint_round(self) -> None:
        if not self.checkpoints_indexed:
            # Once per start: a worker killed between a checkpoint's object and its row left it unindexed.
            audit_chain.index_locked_checkpoints(engine=self.deps.engine, vault=self.deps.vault)
            self.checkpoints_indexed = True
        result = audit_chain.write_checkpoint(
            engine=self.deps.engine,
            vault=self.deps.vault,
            reference=self.checkpoint_reference,
            announced=self.announced_break,
        )
        AUDIT_ENTRIES.set(result.chain.count)
        AUDIT_CHAIN_OK.set(1 if result.ok else 0)
        if result.ok and result.checkpoint is not None and result.checkpoint_key is not None:
            self.checkpoint_reference = audit_chain.LockedCheckpoint(result.checkpoint_key, result.checkpoint)
            self.announced_break = None
        elif not result.ok:
            self.announced_break = result.reason

    def run(self, stop: threading.Event) -> None:
        self.deps.vault.ensure_ready()
        # pyHanko's imports and first validation context cost about a second: paid before consuming, not
        # by the first archived file.
        self.deps.verifier.warm_up()
        run_all(self.parts, stop)

    def close(self) -> None:
        close = getattr(self.publisher, "close", None)
        if callable(close):
            close()
        self.deps.engine.dispose()


def build_worker(settings: Settings, deps: ArchiveDeps | None = None) -> ArchiveWorker:
    deps = deps or build_deps(settings)
    common = settings.common
    publisher = Publisher(common.amqp_url, confirm_timeout=common.publish_confirm_timeout)
    worker = ArchiveWorker(settings=settings, deps=deps, publisher=publisher)
    relay = OutboxRelay(deps.engine, outbox, publisher, name=messages.SERVICE, wakeable=True)
    # Each consumer is a thread with its own broker connection handling one message at a time: while one
    # waits on the object store or the database, another hashes or validates. With several, each takes
    # one message at a time (prefetch 1) so that a short burst is spread over all of them.
    consumers = [
        ConsumerWorker(
            EventConsumer(
                common.amqp_url,
                subscriptions(deps, committed=relay.wake),
                delivery_limit=common.consumer_delivery_limit,
                prefetch_count=CONSUMER_PREFETCH if settings.consumers == 1 else 1,
                probes=probes(deps),
            )
        )
        for _ in range(settings.consumers)
    ]
    worker.parts = [
        *consumers,
        RelayWorker(
            relay,
            common.amqp_url,
            delivery_limit=common.consumer_delivery_limit,
            timeout=common.publish_confirm_timeout,
            service=messages.SERVICE,
        ),
        Periodic(
            "fixity sweep",
            worker.fixity_round,
            max(settings.fixity_period_seconds / SWEEPS_PER_PERIOD, MIN_INTERVAL),
        ),
        Periodic(
            "audit checkpoint", worker.checkpoint_round, max(settings.audit_checkpoint_seconds, MIN_INTERVAL)
        ),
        Periodic(
            "outbox and inbox pruning",
            Pruner(messages.SERVICE, deps.engine, outbox, inbox, common.pruning).round,
            common.pruning.interval_seconds,
        ),
    ]
    return worker


def main() -> None:
    try:
        worker_main(messages.SERVICE, Settings.from_env, build_worker)
    except WorkerFailed as exc:
        if isinstance(exc.__cause__, StoreLacksCapability):
            # Not a crash to debug but a store that cannot keep the archive's guarantees: say which, once.
            print(f"archive worker: refusing to start: {exc.__cause__}", file=sys.stderr)
            raise SystemExit(2) from None
        raise


if __name__ == "__main__":
    main()
