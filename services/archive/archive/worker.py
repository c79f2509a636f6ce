"""The archive worker: event consumers, the outbox relay, the fixity sweep and the audit checkpoint."""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from kombu import Connection
from prometheus_client import Counter, Gauge
from shared.envelope import Envelope
from shared.logs import configure_logging
from shared.messaging import EventConsumer, Publisher, Subscription, declare_events_exchange
from shared.outbox import OutboxPublisher, OutboxRelay
from shared.runtime import Worker, run_all
from shared.settings import SettingsError

from archive import handlers, messages
from archive.adapters.db import outbox
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


@dataclass
class Periodic:
    """Runs `job` every `interval` seconds until stopped; a failing round is logged and retried next time."""

    name: str
    job: Callable[[], object]
    interval: float

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.job()
            except Exception:
                log.exception("%s round failed; retrying in %.0fs", self.name, self.interval)
            stop.wait(self.interval)


@dataclass
class ConsumerWorker:
    consumer: EventConsumer

    def run(self, stop: threading.Event) -> None:
        self.consumer.run(stop)


@dataclass
class RelayWorker:
    """Declares archive.events (retrying while the broker is away), then relays the outbox."""

    relay: OutboxRelay
    amqp_url: str
    timeout: float

    def run(self, stop: threading.Event) -> None:
        backoff = 0.2
        while not stop.is_set():
            try:
                with Connection(self.amqp_url, connect_timeout=self.timeout) as conn:
                    declare_events_exchange(conn, messages.SERVICE)
                break
            except Exception as exc:  # noqa: BLE001 - any broker failure means "try again later"
                log.warning("cannot declare archive.events yet (%s); retrying in %.1fs", exc, backoff)
                stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)
        if not stop.is_set():
            self.relay.run(stop)


def subscriptions(deps: ArchiveDeps) -> list[Subscription]:
    """One queue per consumed event, named archive.<source>.<event>."""

    def on_directive(envelope: Envelope) -> None:
        handlers.handle_directive_registered(
            envelope, engine=deps.engine, vault=deps.vault, verifier=deps.verifier
        )

    def on_task(envelope: Envelope) -> None:
        handlers.handle_task_event(envelope, engine=deps.engine, vault=deps.vault, verifier=deps.verifier)

    subs = []
    for source, event in messages.CONSUMED:
        subs.append(
            Subscription(
                queue=messages.consumer_queue(source, event),
                exchange=f"{source}.events",
                routing_key=messages.source_routing_key(source, event),
                handler=on_directive if (source, event) == messages.DIRECTIVE_REGISTERED else on_task,
            )
        )
    return subs


@dataclass
class ArchiveWorker:
    """Everything the archive runs in the background, as one Worker."""

    settings: Settings
    deps: ArchiveDeps
    publisher: OutboxPublisher
    parts: list[Worker] = field(default_factory=list)

    def fixity_round(self) -> None:
        summary = handlers.run_fixity_sweep(
            engine=self.deps.engine, vault=self.deps.vault, period_seconds=self.settings.fixity_period_seconds
        )
        FIXITY_CHECKED.inc(summary.checked)
        FIXITY_FAILED.inc(summary.failed)
        FIXITY_LAST_RUN.set_to_current_time()

    def checkpoint_round(self) -> None:
        result = handlers.write_checkpoint(engine=self.deps.engine, vault=self.deps.vault)
        AUDIT_ENTRIES.set(result.chain.count)
        AUDIT_CHAIN_OK.set(1 if result.ok else 0)

    def run(self, stop: threading.Event) -> None:
        self.deps.vault.ensure_ready()
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
    consumer = EventConsumer(
        common.amqp_url, subscriptions(deps), delivery_limit=common.consumer_delivery_limit
    )
    relay = OutboxRelay(deps.engine, outbox, publisher, name=messages.SERVICE)
    worker.parts = [
        ConsumerWorker(consumer),
        RelayWorker(relay, common.amqp_url, common.publish_confirm_timeout),
        Periodic(
            "fixity sweep",
            worker.fixity_round,
            max(settings.fixity_period_seconds / SWEEPS_PER_PERIOD, MIN_INTERVAL),
        ),
        Periodic(
            "audit checkpoint", worker.checkpoint_round, max(settings.audit_checkpoint_seconds, MIN_INTERVAL)
        ),
    ]
    return worker


def main() -> None:
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"archive worker: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    configure_logging(settings.common.log_level)
    worker = build_worker(settings)
    log.info("archive worker started")
    try:
        worker.run(threading.Event())
    finally:
        worker.close()


if __name__ == "__main__":
    main()
