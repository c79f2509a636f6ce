"""The worker composition on the embedded defaults (SQLite, memory:// broker): consume, route, relay, scan."""

import threading
import time

import pytest
import sqlalchemy as sa
from kombu import Connection
from routing.adapters import tables as t
from routing.messages import DIRECTIVE_REGISTERED_EXCHANGE, DIRECTIVE_REGISTERED_KEY
from routing.settings import Settings
from routing.worker import build_worker, directive_handler
from routing_testkit import SECRET, build_routing_app, registered_event
from shared.envelope import Envelope
from shared.messaging import PermanentError, Publisher


def worker_settings(tmp_path, app, **environ: str) -> Settings:
    """The worker's settings on the app's database (embedded defaults otherwise), plus `environ`."""
    return Settings.from_env(
        {
            "DOCROUTE_DATA_DIR": str(tmp_path),
            "DOCROUTE_JWT_SECRET": SECRET,
            "DOCROUTE_ROUTING_DATABASE_URL": app.settings.database_url,
            **environ,
        }
    )


def test_handler_dead_letters_an_unusable_payload(rapp):
    handle = directive_handler(rapp.deps.engine, rapp.deps.calendar)
    with pytest.raises(PermanentError):
        handle(Envelope.new("intake.directive_registered", {"metadata": {}}, producer="intake"))


def test_worker_routes_events_relays_tasks_and_stops(tmp_path):
    app = build_routing_app(tmp_path)
    app.load_samples()
    settings = worker_settings(
        tmp_path, app, DOCROUTE_LEASE_SCAN_SECONDS="0.1", DOCROUTE_OVERDUE_SCAN_SECONDS="0.1"
    )
    worker = build_worker(settings)
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
    thread.start()
    try:
        assert worker.consumer.ready.wait(10)
        event = registered_event("171-CV-BTGTU.json")
        with Publisher("memory://") as publisher:
            publisher.publish(
                exchange=DIRECTIVE_REGISTERED_EXCHANGE,
                routing_key=DIRECTIVE_REGISTERED_KEY,
                body=event.to_bytes(),
                message_id=event.id,
            )

        def settled() -> bool:
            with app.deps.engine.connect() as conn:
                tasks = conn.execute(sa.select(sa.func.count()).select_from(t.tasks)).scalar_one()
                overdue = conn.execute(
                    sa.select(sa.func.count()).select_from(t.tasks).where(t.tasks.c.overdue_at.is_not(None))
                ).scalar_one()
                unpublished = conn.execute(
                    sa.select(sa.func.count()).select_from(t.outbox).where(t.outbox.c.published_at.is_(None))
                ).scalar_one()
            return tasks == 13 and overdue == 13 and unpublished == 0

        deadline = time.monotonic() + 15
        while not settled() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert settled()  # arrival in 2021: every deadline has passed, so the scan marked them all
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()
    got = app.client.post("/v1/units/CTTDT/tasks:poll", json={"max": 10}, headers=app.auth("unit", "CTTDT"))
    body = got.get_json()
    assert len(body["items"]) == 1 and len(body["reminders"]) == 1
    with Connection("memory://") as conn:
        assert conn.channel().queue_declare("routing.tasks.CTTDT", passive=True).message_count == 0


def test_the_workers_consumers_share_one_copy_of_units_and_rules(tmp_path):
    import dataclasses

    app = build_routing_app(tmp_path)
    app.load_samples()
    worker = build_worker(dataclasses.replace(worker_settings(tmp_path, app), consumers=3))
    try:
        handlers = [consumer.subscriptions[0].handler for consumer in worker.consumers]
        assert len(handlers) == 3
        for handle in handlers:
            handle(registered_event("171-CV-BTGTU.json"))
        assert worker.reference.loads == 1  # read once, by whichever consumer came first
    finally:
        worker.publisher.close()
        worker.queues.close()
        worker.engine.dispose()


def test_the_workers_handlers_wake_its_relay_once_their_transaction_committed(tmp_path):
    app = build_routing_app(tmp_path)
    app.load_samples()
    worker = build_worker(worker_settings(tmp_path, app))
    try:
        assert worker.relay.wakeable and not worker.relay.woken
        event = registered_event("171-CV-BTGTU.json")
        worker.consumer.subscriptions[0].handler(event)
        assert worker.relay.woken
        with app.deps.engine.connect() as conn:  # the rows it announced are committed
            assert (
                conn.execute(
                    sa.select(sa.func.count()).select_from(t.outbox).where(t.outbox.c.published_at.is_(None))
                ).scalar_one()
                == 14
            )
        assert worker.relay.run_once() == 14
    finally:
        worker.publisher.close()
        worker.queues.close()
        worker.engine.dispose()


def test_a_handler_that_fails_does_not_wake_the_relay(rapp):
    from routing.worker import then

    woken: list[int] = []
    handle = then(directive_handler(rapp.deps.engine, rapp.deps.calendar), lambda: woken.append(1))
    with pytest.raises(PermanentError):
        handle(Envelope.new("intake.directive_registered", {"metadata": {}}, producer="intake"))
    assert woken == []
    handle(registered_event("171-CV-BTGTU.json"))
    assert woken == [1]
