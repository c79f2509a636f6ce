"""The archive worker against RabbitMQ, PostgreSQL and an S3 server (moto, Ceph RGW): consume, archive once,
publish via outbox."""

from __future__ import annotations

import hashlib
import json
import threading
import time
import uuid

import pytest
import sqlalchemy as sa
from archive.adapters.db import migrate, records
from archive.domain.records import archive_key
from archive.settings import Settings
from archive.worker import build_worker
from archive_testkit import directive_event, stage
from kombu import Connection, Exchange, Queue
from shared.messaging import Publisher, declare_events_exchange

pytestmark = pytest.mark.integration


def _wait(predicate, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("timed out waiting")


def _checkpoint_key(engine):
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT key FROM audit_checkpoints")).scalar()


@pytest.mark.parametrize("consumers", [1, 3])
def test_worker_archives_redelivered_event_once_and_announces_it(
    amqp_vhost_factory, pg_url, s3_server, trust_bundle, samples, tmp_path, consumers
):
    amqp_url = amqp_vhost_factory()
    suffix = uuid.uuid4().hex[:8]
    env = {
        "DOCROUTE_DATA_DIR": str(tmp_path),
        "DOCROUTE_AMQP_URL": amqp_url,
        "DOCROUTE_ARCHIVE_DATABASE_URL": pg_url,
        **s3_server.env(),
        "DOCROUTE_STAGING_BUCKET": f"stg-{suffix}",
        "DOCROUTE_ARCHIVE_BUCKET": f"arc-{suffix}",
        "DOCROUTE_JWT_SECRET": "x" * 40,
        "DOCROUTE_TRUST_STORE": str(trust_bundle),
        "DOCROUTE_AUDIT_CHECKPOINT_SECONDS": "1",
        # With several consumers the two copies below can be handled at the same time.
        "DOCROUTE_ARCHIVE_CONSUMERS": str(consumers),
    }
    settings = Settings.from_env(env)
    store = s3_server.store()
    store.ensure_bucket(settings.staging_bucket)
    staged = stage(store, samples.valid, "Kế hoạch 120.pdf", bucket=settings.staging_bucket)
    event = directive_event("d-worker", [staged.attachment])

    worker = build_worker(settings)
    migrate(worker.deps.engine)
    with Connection(amqp_url) as conn:
        declare_events_exchange(conn, "intake")
        declare_events_exchange(conn, "archive")
        tap = Queue(
            f"tap-{suffix}",
            Exchange("archive.events", type="topic", no_declare=True),
            routing_key="#",
            exclusive=True,
        )
        channel = conn.channel()
        bound = tap(channel)
        bound.declare()
        stop = threading.Event()
        thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
        thread.start()
        try:
            for part in worker.parts[:consumers]:
                assert part.consumer.ready.wait(20)
            with Publisher(amqp_url) as publisher:
                for _ in range(2):  # the broker redelivers / intake's relay publishes twice
                    publisher.publish(
                        exchange="intake.events",
                        routing_key=event.routing_key,
                        body=event.to_bytes(),
                        message_id=event.id,
                    )

            message = _wait(lambda: bound.get(no_ack=True))
            envelope = json.loads(message.body)
            assert envelope["type"] == "archive.record_archived"
            assert envelope["payload"]["filename"] == "Kế hoạch 120.pdf"
            assert envelope["payload"]["signature_status"] == "valid"

            def latest_checkpoint() -> str | None:
                # Each poll returns its connection to the pool (a bare connect() would hold one per poll).
                with worker.deps.engine.connect() as polled:
                    return polled.execute(sa.text("SELECT key FROM audit_checkpoints")).scalar()

            checkpoint_key = _wait(latest_checkpoint)
            assert store.exists(settings.archive_bucket, checkpoint_key)
            time.sleep(0.5)  # let a second delivery be processed, if it were to archive anything
            with worker.deps.engine.connect() as conn2:
                assert conn2.execute(sa.select(sa.func.count()).select_from(records)).scalar_one() == 1
            assert bound.get(no_ack=True) is None  # one record_archived, not two
            # One version, retained, no provisional hold left: whether the store copied the staged file
            # itself (moto, with the archive's key lock) or the archive uploaded it (RGW).
            key = archive_key("d-worker", hashlib.sha256(samples.valid).hexdigest())
            raw = store._client
            versions = list(raw.list_objects(settings.archive_bucket, prefix=key, include_version=True))
            assert len(versions) == 1
            kept = store.stat(settings.archive_bucket, key)
            assert kept.retention is not None and not kept.legal_hold
            assert store.read(settings.archive_bucket, key) == samples.valid
            assert store.capabilities().copy_checksum_sha256 is (s3_server.name == "moto")
        finally:
            stop.set()
            thread.join(15)
            worker.close()
