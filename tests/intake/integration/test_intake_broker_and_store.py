"""Intake against the real servers: events reach RabbitMQ (also after an outage), S3 outages answer 503."""

from __future__ import annotations

import base64
import hashlib
import socket
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from intake.settings import Settings
from intake.worker import IntakeWorker
from intake_broker import QueueTap, s3_environ
from intake_testing import IntakeApp, build_intake_app, intake_environ, minimal_pdf, sample
from kombu import Connection
from shared.messaging import Publisher, declare_topology

pytestmark = pytest.mark.integration


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def with_pdf(name: str, content: bytes) -> dict:
    return {
        **sample(name),
        "attachments": [
            {
                "filename": f"{name}.pdf",
                "content_type": "application/pdf",
                "content_base64": base64.b64encode(content).decode(),
            }
        ],
    }


def settings_for(app: IntakeApp, amqp_url: str) -> Settings:
    base = app.deps.settings
    common = type(base.common)(
        **{**base.common.__dict__, "amqp_url": amqp_url, "publish_confirm_timeout": 2.0}
    )
    return type(base)(**{**base.__dict__, "common": common})


def unpublished(app: IntakeApp) -> int:
    with app.deps.engine.connect() as conn:
        return int(
            conn.execute(sa.text("SELECT count(*) FROM outbox WHERE published_at IS NULL")).scalar_one()
        )


def test_the_event_reaches_a_queue_bound_to_intake_events(
    pg_intake: IntakeApp, amqp_vhost_factory, tap_factory
) -> None:
    amqp_url = amqp_vhost_factory()
    worker = IntakeWorker(settings_for(pg_intake, amqp_url), engine=pg_intake.deps.engine, idle_sleep=0.05)
    with Connection(amqp_url) as conn:
        declare_topology(conn)
    tap: QueueTap = tap_factory(amqp_url)
    content = minimal_pdf("event")
    created = pg_intake.post_json(with_pdf("120-KH-BCD", content)).get_json()

    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
    thread.start()
    try:
        [(routing_key, envelope)] = tap.get_all(1)
    finally:
        stop.set()
        thread.join(timeout=10)
        worker.close()
    assert routing_key == "intake.directive_registered.v1"
    assert envelope["type"] == "intake.directive_registered"
    payload = envelope["payload"]
    assert payload["directive_id"] == created["id"]
    assert payload["arrival_number"] == created["arrival_number"] == 1
    assert payload["metadata"]["issuer"]["name"] == "Ban Chỉ đạo liên ngành an toàn thực phẩm tỉnh Bình Phước"
    assert payload["metadata"]["code_notation"] == "KH-BCĐ"
    assert payload["metadata"]["urgency"] == "khan"
    [attachment] = payload["attachments"]
    # The staged object in S3 is the exact upload, where the event says it is.
    stored = pg_intake.deps.staging.store.read(attachment["bucket"], attachment["key"])
    assert stored == content
    assert attachment["sha256"] == hashlib.sha256(content).hexdigest()
    assert unpublished(pg_intake) == 0


def test_with_the_broker_down_directives_are_accepted_and_delivered_later(
    pg_intake: IntakeApp, amqp_vhost_factory, tap_factory
) -> None:
    down_url = f"amqp://guest:guest@127.0.0.1:{closed_port()}//"
    down_settings = settings_for(pg_intake, down_url)
    created = [
        pg_intake.post_json(with_pdf(name, minimal_pdf(name))) for name in ("1393-CVT-CL", "171-CV-BTGTU")
    ]
    assert [r.status_code for r in created] == [201, 201]

    publisher = Publisher(down_url, confirm_timeout=0.5, retries=0)
    down = IntakeWorker(down_settings, engine=pg_intake.deps.engine, publisher=publisher)
    with pytest.raises(Exception):  # noqa: B017 - whichever connection error the transport raises
        down.relay.run_once()
    publisher.close()
    assert unpublished(pg_intake) == 2
    with pg_intake.deps.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT max(attempts) FROM outbox")).scalar_one() >= 1

    # The broker is back: the relay delivers everything once, in order.
    amqp_url = amqp_vhost_factory()
    worker = IntakeWorker(settings_for(pg_intake, amqp_url), engine=pg_intake.deps.engine)
    with Connection(amqp_url) as conn:
        declare_topology(conn)
    tap = tap_factory(amqp_url)
    assert worker.relay.run_once() == 2
    assert worker.relay.run_once() == 0
    worker.close()
    delivered = tap.get_all(3, timeout=1.5)
    assert [env["payload"]["directive_id"] for _, env in delivered] == [r.get_json()["id"] for r in created]
    assert unpublished(pg_intake) == 0


def test_object_store_down_answers_503_with_retry_after_and_stores_nothing(
    tmp_path: Path, pg_url: str
) -> None:
    environ = intake_environ(
        tmp_path, DOCROUTE_INTAKE_DATABASE_URL=pg_url, **s3_environ(f"127.0.0.1:{closed_port()}")
    )
    app = build_intake_app(environ)
    try:
        started = time.monotonic()
        response = app.post_json(with_pdf("1393-CVT-CL", minimal_pdf()))
        assert time.monotonic() - started < 20
        assert response.status_code == 503, response.get_json()
        assert response.content_type == "application/problem+json"
        assert int(response.headers["Retry-After"]) > 0
        for table in ("directives", "attachments", "outbox", "arrival_counters"):
            assert app.count_rows(table) == 0
        assert app.client.get("/readyz").status_code == 503
    finally:
        app.deps.engine.dispose()


def test_a_submission_without_files_needs_no_object_store(tmp_path: Path, pg_url: str) -> None:
    environ = intake_environ(
        tmp_path, DOCROUTE_INTAKE_DATABASE_URL=pg_url, **s3_environ(f"127.0.0.1:{closed_port()}")
    )
    app = build_intake_app(environ)
    try:
        assert app.post_json(sample("1393-CVT-CL")).status_code == 201
    finally:
        app.deps.engine.dispose()


def test_the_s3_staging_area_holds_exactly_the_uploaded_bytes(pg_intake: IntakeApp) -> None:
    content = minimal_pdf("s3")
    created = pg_intake.post_multipart(
        sample("171-CV-BTGTU"), [(content, "Công văn 171.pdf", "application/pdf")]
    )
    assert created.status_code == 201, created.get_json()
    [attachment] = created.get_json()["attachments"]
    response = pg_intake.client.get(attachment["url"], headers=pg_intake.auth("clerk"))
    assert response.data == content
    assert pg_intake.staged_objects() == [f"directives/{created.get_json()['id']}/{attachment['sha256']}"]
