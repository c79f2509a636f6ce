"""REST polling against a real RabbitMQ vhost and PostgreSQL: waiting, leases, expiry, duplicates."""

import json
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from kombu import Connection
from routing import deadlines, dispatch, leases
from routing.adapters import tables as t
from routing_testkit import build_routing_app, registered_event

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def live_app(tmp_path_factory, pg_database_factory, amqp_vhost_factory):
    # One database and vhost for the module (creating them costs seconds); each test starts clean.
    app = build_routing_app(
        tmp_path_factory.mktemp("routing-live"), pg_database_factory(), amqp_vhost_factory()
    )
    app.load_samples()
    yield app
    app.deps.engine.dispose()


@pytest.fixture
def live(live_app):
    with live_app.deps.engine.begin() as conn:
        for table in (t.task_history, t.tasks, t.directives, t.outbox, t.inbox):
            conn.execute(sa.delete(table))
        codes = list(conn.execute(sa.select(t.units.c.code)).scalars())
    with Connection(live_app.amqp_url) as broker:
        channel = broker.channel()
        for code in codes:
            channel.queue_purge(f"routing.tasks.{code}")
        channel.close()
    return live_app


def route(app, name):
    event = registered_event(name)
    ids = dispatch.route_directive(event, engine=app.deps.engine, calendar=app.deps.calendar)
    return event.payload["directive_id"], ids


def poll(app, unit, **body):
    r = app.client.post(f"/v1/units/{unit}/tasks:poll", json=body, headers=app.auth("unit", unit))
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def test_import_declares_quorum_unit_queues(live):
    with Connection(live.amqp_url) as conn:
        channel = conn.channel()
        ok = channel.queue_declare("routing.tasks.CTTDT", passive=True)
        assert ok.message_count == 0
    with live.deps.engine.connect() as conn:
        pending = conn.execute(
            sa.select(sa.func.count()).select_from(t.units).where(t.units.c.queue_declared_at.is_(None))
        )
        assert pending.scalar_one() == 0


def test_poll_waits_for_a_task_then_leases_it(live):
    def later():
        time.sleep(0.4)
        route(live, "171-CV-BTGTU.json")
        live.relay()

    publisher = threading.Thread(target=later, daemon=True)
    started = time.monotonic()
    publisher.start()
    got = poll(live, "CTTDT", max=5, wait_seconds=5, lease_seconds=60)
    elapsed = time.monotonic() - started
    publisher.join(10)
    assert 0.35 < elapsed < 5
    assert len(got["items"]) == 1 and got["items"][0]["unit"] == "CTTDT"
    with live.deps.engine.connect() as conn:
        lease = conn.execute(
            sa.select(t.tasks.c.lease_expires_at).where(t.tasks.c.id == got["items"][0]["id"])
        ).scalar_one()
    assert lease is not None and lease > datetime.now(UTC) + timedelta(seconds=50)


def test_empty_poll_returns_after_wait(live):
    started = time.monotonic()
    assert poll(live, "SYT", wait_seconds=0.5)["items"] == []
    assert 0.45 < time.monotonic() - started < 3


def test_unacked_task_is_offered_again_after_its_lease(live):
    route(live, "171-CV-BTGTU.json")
    live.relay()
    first = poll(live, "BPTV", lease_seconds=1)["items"]
    assert len(first) == 1
    assert poll(live, "BPTV")["items"] == []
    # A second past the lease's end, without waiting for it on the clock.
    assert deadlines.expire_leases(engine=live.deps.engine, now=datetime.now(UTC) + timedelta(seconds=2)) == 1
    live.relay()
    again = poll(live, "BPTV", wait_seconds=2)["items"]
    assert [x["id"] for x in again] == [first[0]["id"]]
    acked = live.client.post(f"/v1/tasks/{first[0]['id']}/ack", headers=live.auth("unit", "BPTV"))
    assert acked.status_code < 300, acked.get_json()
    assert deadlines.expire_leases(engine=live.deps.engine, now=datetime.now(UTC) + timedelta(hours=1)) == 0


def test_duplicate_messages_are_not_offered_twice(live):
    route(live, "171-CV-BTGTU.json")
    live.relay()
    # Publish every unit-queue message a second time, as a relay killed before its commit would.
    with live.deps.engine.begin() as conn:
        conn.execute(
            sa.update(t.outbox).where(t.outbox.c.exchange == "routing.tasks").values(published_at=None)
        )
    live.relay()
    got = poll(live, "CTTDT", max=10, wait_seconds=0.5)
    assert len(got["items"]) == 1
    assert poll(live, "CTTDT", max=10)["items"] == []
    # An acked task's leftover message is dropped too.
    task_id = got["items"][0]["id"]
    live.client.post(f"/v1/tasks/{task_id}/ack", headers=live.auth("unit", "CTTDT"))
    with live.deps.engine.begin() as conn:
        conn.execute(sa.update(t.outbox).where(t.outbox.c.routing_key == "CTTDT").values(published_at=None))
    live.relay()
    assert poll(live, "CTTDT", max=10, wait_seconds=0.3)["items"] == []


def test_offers_built_at_routing_equal_the_task_as_read_back_on_postgresql(live):
    import json

    _, ids = route(live, "1393-CVT-CL.json")
    with live.deps.engine.connect() as conn:
        bodies = conn.execute(sa.select(t.outbox.c.body)).scalars().all()
    events = [json.loads(bytes(b)) for b in bodies]
    offered = {e["payload"]["id"]: e["payload"] for e in events if e["type"] == "routing.task_offered"}
    [assigned] = [e["payload"] for e in events if e["type"] == "routing.tasks_assigned"]
    assert sorted(offered) == sorted(ids)
    assert {task["id"]: task for task in assigned["tasks"]} == offered
    for task_id in ids:
        read = live.client.get(f"/v1/tasks/{task_id}", headers=live.auth("clerk")).get_json()
        read.pop("history")
        assert offered[task_id] == read


def test_poll_then_batch_ack_on_postgresql(live):
    _, ids = route(live, "1393-CVT-CL.json")
    route(live, "120-KH-BCD.json")
    live.relay()
    got = poll(live, "CTTDT", max=10)["items"]
    assert len(got) == 2 and all(x["lease_expires_at"] for x in got)
    taken = [x["id"] for x in got]
    other = next(i for i in ids if i not in taken)  # another unit's task of the first directive
    unit = live.auth("unit", "CTTDT")
    r = live.client.post("/v1/units/CTTDT/tasks:ack", json={"ids": [*taken, other]}, headers=unit)
    assert r.status_code == 200, r.get_json()
    assert [(x["result"], x["status"]) for x in r.get_json()["items"]] == [
        ("acked", "received"),
        ("acked", "received"),
        ("not_found", None),
    ]
    repeat = live.client.post("/v1/units/CTTDT/tasks:ack", json={"ids": taken}, headers=unit).get_json()
    assert [x["result"] for x in repeat["items"]] == ["unchanged", "unchanged"]
    with live.deps.engine.connect() as conn:
        statuses = dict(conn.execute(sa.select(t.tasks.c.id, t.tasks.c.status)).all())
        lease_ends = conn.execute(
            sa.select(t.tasks.c.lease_expires_at).where(t.tasks.c.id.in_(taken))
        ).scalars()
        assert all(lease is None for lease in lease_ends)
        history = conn.execute(
            sa.select(t.task_history.c.task_id).where(t.task_history.c.to_status == "received")
        ).scalars()
        assert sorted(history) == sorted(taken)
    assert [statuses[i] for i in taken] == ["received", "received"] and statuses[other] == "assigned"
    # The events' task documents (built from UPDATE … FROM … RETURNING) equal the tasks as read back.
    with live.deps.engine.connect() as conn:
        bodies = conn.execute(sa.select(t.outbox.c.body)).scalars().all()
    events = [json.loads(bytes(b)) for b in bodies]
    [acked] = [e["payload"] for e in events if e["type"] == "routing.tasks_acknowledged"]
    changed = {c["task_id"]: c for c in acked["changes"] if c["from_status"] == "assigned"}
    assert sorted(changed) == sorted(taken)
    for task_id in taken:
        read = live.client.get(f"/v1/tasks/{task_id}", headers=unit).get_json()
        read.pop("history")
        assert changed[task_id]["task"] == read


def test_a_fresh_process_trusts_recorded_declarations_and_declares_the_rest(live, monkeypatch):
    from routing.adapters import unit_queue
    from routing.adapters.unit_queue import KombuUnitQueues

    declared: list[str] = []
    real = unit_queue.declare_unit_queue

    def spy(conn, code, **kw):
        declared.append(code)
        return real(conn, code, **kw)

    monkeypatch.setattr(unit_queue, "declare_unit_queue", spy)
    with live.deps.engine.begin() as conn:
        conn.execute(sa.update(t.units).where(t.units.c.code == "SYT").values(queue_declared_at=None))
    queues = KombuUnitQueues(live.amqp_url)  # as in a new gunicorn worker: nothing declared yet
    try:
        for code in ("CTTDT", "SYT"):
            leases.poll_tasks(
                code, engine=live.deps.engine, queues=queues, max_tasks=1, wait_seconds=0, lease_seconds=60
            )
        assert declared == ["SYT"]  # CTTDT's queue is recorded as declared
        # A recorded queue that was deleted meanwhile is declared again by the reader.
        with Connection(live.amqp_url) as broker:
            broker.channel().queue_delete("routing.tasks.BPTV")
        leases.poll_tasks(
            "BPTV", engine=live.deps.engine, queues=queues, max_tasks=1, wait_seconds=0, lease_seconds=60
        )
        assert declared == ["SYT", "BPTV"]
    finally:
        queues.close()
