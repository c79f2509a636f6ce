"""An object-store outage under the archive worker, on each S3 server (moto, Ceph RGW): its consumers pause,
archive the whole backlog once the store answers again, and dead-letter nothing."""

from __future__ import annotations

import threading
import time
import uuid

import pytest
import sqlalchemy as sa
from archive import messages
from archive.adapters.db import migrate, records
from archive.settings import Settings
from archive.worker import build_worker
from archive_testkit import directive_event, stage
from kombu import Connection
from prometheus_client import REGISTRY
from shared.health import HEALTH
from shared.messaging import Publisher, declare_events_exchange, list_dlq

from chaos.proxy import TcpProxy

pytestmark = pytest.mark.integration

BACKLOG = 20
OUTAGE = 12.0  # past the longest pause between probes (10 s)


def _wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_an_object_store_outage_pauses_the_archive_and_every_file_is_archived_once_after_it(
    amqp_vhost_factory, pg_url, s3_server, trust_bundle, samples, tmp_path
):
    amqp_url = amqp_vhost_factory()
    suffix = uuid.uuid4().hex[:8]
    host, port = s3_server.endpoint.rsplit(":", 1)
    queue = messages.consumer_queue(*messages.DIRECTIVE_REGISTERED)
    with TcpProxy((host, int(port))) as proxy:
        settings = Settings.from_env(
            {
                "DOCROUTE_DATA_DIR": str(tmp_path),
                "DOCROUTE_AMQP_URL": amqp_url,
                "DOCROUTE_ARCHIVE_DATABASE_URL": pg_url,
                **s3_server.env(),
                "DOCROUTE_S3_ENDPOINT": f"127.0.0.1:{proxy.port}",
                "DOCROUTE_STAGING_BUCKET": f"stg-{suffix}",
                "DOCROUTE_ARCHIVE_BUCKET": f"arc-{suffix}",
                "DOCROUTE_JWT_SECRET": "x" * 40,
                "DOCROUTE_TRUST_STORE": str(trust_bundle),
                "DOCROUTE_ARCHIVE_CONSUMERS": "2",
            }
        )
        # Staged straight on the server, as intake did before the outage.
        direct = s3_server.store()
        direct.ensure_bucket(settings.staging_bucket)
        staged = [
            stage(direct, samples.valid, f"Kế hoạch {n}.pdf", bucket=settings.staging_bucket)
            for n in range(BACKLOG)
        ]
        events = [directive_event(f"d-outage-{n}", [s.attachment]) for n, s in enumerate(staged)]
        worker = build_worker(settings)
        migrate(worker.deps.engine)
        with Connection(amqp_url) as conn:
            declare_events_exchange(conn, "intake")
        stop = threading.Event()
        thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
        thread.start()
        pauses_before = (
            REGISTRY.get_sample_value(
                "docroute_consumer_pauses_total", {"queue": queue, "dependency": "object_store"}
            )
            or 0.0
        )
        try:
            for part in worker.parts[:2]:
                assert part.consumer.ready.wait(30)
            proxy.refuse()  # the store is unreachable: connections dropped, new ones refused
            went_down = time.monotonic()
            with Publisher(amqp_url) as publisher:
                for event in events:
                    publisher.publish(
                        exchange="intake.events",
                        routing_key=event.routing_key,
                        body=event.to_bytes(),
                        message_id=event.id,
                    )
            _wait(lambda: "object_store" in HEALTH.down(), 30, "the consumers to pause")
            _wait(lambda: time.monotonic() - went_down >= OUTAGE, OUTAGE + 5, "the outage to last")
            proxy.restore()

            def archived() -> bool:
                with worker.deps.engine.connect() as conn:
                    count = conn.execute(sa.select(sa.func.count()).select_from(records)).scalar_one()
                return bool(count == BACKLOG)

            _wait(archived, 120, "every file archived")
            _wait(lambda: "object_store" not in HEALTH.down(), 30, "the pause to end")
            with worker.deps.engine.connect() as conn:
                kept = conn.execute(sa.select(records.c.key, records.c.version_id)).all()
            # A put cut off mid-way and retried left no second version (RGW: the key lock, not the server).
            assert all(s3_server.versions(settings.archive_bucket, k) == [v] for k, v in kept)
        finally:
            stop.set()
            thread.join(20)
            worker.close()
    assert list_dlq(amqp_url, queue, 10) == []
    pauses = REGISTRY.get_sample_value(
        "docroute_consumer_pauses_total", {"queue": queue, "dependency": "object_store"}
    )
    assert pauses is not None and pauses > pauses_before
    assert (
        REGISTRY.get_sample_value("docroute_consumer_paused", {"queue": queue, "dependency": "object_store"})
        == 0
    )
