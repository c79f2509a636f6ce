"""The unit-queue adapter's per-process pool on kombu memory: reuse, declare once, settle, fork."""

import uuid

import pytest
from kombu import Connection
from routing.adapters import unit_queue
from routing.adapters.unit_queue import KombuUnitQueues
from routing_testkit import registered_event


@pytest.fixture
def code():
    return f"POOL.{uuid.uuid4().hex[:8]}"


@pytest.fixture
def queues():
    made = KombuUnitQueues("memory://")
    yield made
    made.close()


def put(code, body=b'{"x": 1}'):
    with Connection("memory://") as conn:
        conn.SimpleQueue(f"routing.tasks.{code}").put(body, serializer=None, content_type="application/json")


def depth(code):
    with Connection("memory://") as conn:
        return conn.channel().queue_declare(f"routing.tasks.{code}", passive=True).message_count


def test_polls_reuse_one_connection_and_declare_the_queue_once(queues, code, monkeypatch):
    declared = []
    real = unit_queue.declare_unit_queue
    monkeypatch.setattr(
        unit_queue, "declare_unit_queue", lambda conn, c, **kw: declared.append(c) or real(conn, c, **kw)
    )
    lanes = []
    for _ in range(3):
        with queues.reader(code) as reader:
            assert reader.get() is None
            lanes.append(reader.lane)
    assert declared == [code]
    assert lanes[0] is lanes[1] is lanes[2]


def test_a_channel_with_an_unsettled_message_is_not_reused(queues, code):
    # Giving the message back is the broker's part (tests/routing/integration); memory:// drops it.
    put(code)
    with queues.reader(code) as reader:
        assert reader.get() is not None  # taken, neither acked nor rejected
        first = reader.lane
    with queues.reader(code) as reader:
        assert reader.lane is not first


def test_a_forked_child_opens_its_own_connections(queues, code, monkeypatch):
    with queues.reader(code) as reader:
        parent_lane = reader.lane
    monkeypatch.setattr(unit_queue.os, "getpid", lambda: -1)
    with queues.reader(code) as reader:
        assert reader.lane is not parent_lane


def test_batched_poll_leases_at_most_max_and_leaves_the_rest_queued(rapp):
    rapp.load_samples()
    from routing import dispatch

    with Connection("memory://") as conn:
        conn.channel().queue_purge("routing.tasks.CTTDT")
    for name in ("171-CV-BTGTU.json", "120-KH-BCD.json"):
        dispatch.route_directive(registered_event(name), engine=rapp.deps.engine, calendar=rapp.deps.calendar)
    rapp.relay()
    assert depth("CTTDT") == 2
    auth = rapp.auth("unit", "CTTDT")
    first = rapp.client.post("/v1/units/CTTDT/tasks:poll", json={"max": 1}, headers=auth).get_json()
    assert len(first["items"]) == 1 and depth("CTTDT") == 1
    second = rapp.client.post("/v1/units/CTTDT/tasks:poll", json={"max": 5}, headers=auth).get_json()
    assert len(second["items"]) == 1 and second["items"][0]["id"] != first["items"][0]["id"]
    assert all(item["lease_expires_at"] for item in first["items"] + second["items"])


def test_offers_built_at_routing_equal_the_task_as_read_back(rapp):
    import json

    import sqlalchemy as sa
    from routing import dispatch
    from routing.adapters import tables as t

    rapp.load_samples()
    event = registered_event("1393-CVT-CL.json", attachments=[{"id": "a1", "filename": "Công văn.pdf"}])
    ids = dispatch.route_directive(event, engine=rapp.deps.engine, calendar=rapp.deps.calendar)
    with rapp.deps.engine.connect() as conn:
        bodies = conn.execute(sa.select(t.outbox.c.body).order_by(t.outbox.c.id)).scalars().all()
    offers = [json.loads(bytes(b)) for b in bodies]
    offered = {e["payload"]["id"]: e["payload"] for e in offers if e["type"] == "routing.task_offered"}
    # One offer per task, then one routing.tasks_assigned for the archive carrying the same documents.
    assert sorted(offered) == sorted(ids) and len(offers) == len(ids) + 1
    assert offers[-1]["type"] == "routing.tasks_assigned"
    assert offers[-1]["payload"]["tasks"] == list(offered.values())
    for task_id, payload in offered.items():
        read = rapp.client.get(f"/v1/tasks/{task_id}", headers=rapp.auth("clerk")).get_json()
        read.pop("history")
        assert payload == read
