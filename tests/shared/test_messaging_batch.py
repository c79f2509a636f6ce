"""Publisher.publish_batch (pipelined confirms) on memory:// and the real RabbitMQ: order, returns, nacks."""

import uuid

import pytest
from kombu import Connection, Exchange, Queue
from prometheus_client import REGISTRY
from shared.envelope import Envelope
from shared.logs import correlation_scope
from shared.messaging import (
    OutgoingMessage,
    Publisher,
    PublishError,
    Unroutable,
    body_bytes,
    declare_unit_queue,
)
from shared.naming import TASKS_EXCHANGE, unit_queue


@pytest.fixture
def unit() -> str:
    # The memory transport keeps its queues for the whole process: every test gets its own unit code.
    return f"UNIT_{uuid.uuid4().hex[:8].upper()}"


def task(unit: str, n: int, routing_key: str | None = None) -> OutgoingMessage:
    env = Envelope.new(
        "routing.task_offered", {"n": n, "đơn_vị": "Phòng Văn hoá – Thông tin"}, producer="routing"
    )
    return OutgoingMessage(TASKS_EXCHANGE, routing_key or unit, env.to_bytes(), env.id)


def drain(url: str, queue: str) -> list[tuple[str, bytes, dict]]:
    got = []
    with Connection(url) as conn:
        channel = conn.channel()
        while (m := Queue(queue, no_declare=True)(channel).get(no_ack=True)) is not None:
            got.append((m.properties["message_id"], body_bytes(m), dict(m.headers or {})))
        channel.close()
    return got


def counter(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_a_batch_is_confirmed_whole_and_arrives_in_order_intact(broker_url, unit, publisher):
    with Connection(broker_url) as conn:
        declare_unit_queue(conn, unit)
    batch = [task(unit, n) for n in range(60)]
    before = counter("docroute_events_published_total", exchange=TASKS_EXCHANGE)
    with correlation_scope("req-lô-60"):
        result = publisher.publish_batch(batch)
    assert (result.confirmed, result.error) == (60, None)
    assert counter("docroute_events_published_total", exchange=TASKS_EXCHANGE) - before == 60
    # No waiting: the confirms mean every message is already queued.
    got = drain(broker_url, unit_queue(unit))
    assert [m[0] for m in got] == [m.message_id for m in batch]
    assert [m[1] for m in got] == [m.body for m in batch]
    assert Envelope.from_bytes(got[0][1]).payload["đơn_vị"] == "Phòng Văn hoá – Thông tin"
    assert {m[2]["correlation_id"] for m in got} == {"req-lô-60"}


def test_an_empty_batch_is_a_no_op(publisher):
    assert (publisher.publish_batch([]).confirmed, publisher.publish_batch([]).error) == (0, None)


def test_a_returned_message_ends_the_batch_and_the_ones_before_it_count(broker_url, unit, publisher):
    with Connection(broker_url) as conn:
        declare_unit_queue(conn, unit)
    batch = [task(unit, 0), task(unit, 1), task(unit, 2, routing_key="NO_SUCH_UNIT"), task(unit, 3)]
    before = counter("docroute_publish_failures_total", exchange=TASKS_EXCHANGE, reason="unroutable")
    result = publisher.publish_batch(batch)
    assert result.confirmed == 2
    assert isinstance(result.error, Unroutable)
    assert "NO_SUCH_UNIT" in str(result.error)
    assert (
        counter("docroute_publish_failures_total", exchange=TASKS_EXCHANGE, reason="unroutable") == before + 1
    )
    ids = [m[0] for m in drain(broker_url, unit_queue(unit))]
    assert ids[:2] == [batch[0].message_id, batch[1].message_id]
    # The publisher goes on working after a return.
    assert publisher.publish_batch([task(unit, 9)]).confirmed == 1


def test_a_missing_exchange_in_a_batch_is_pinned_to_its_message(broker_url, unit, publisher):
    with Connection(broker_url) as conn:
        declare_unit_queue(conn, unit)
    missing = OutgoingMessage(f"missing-{uuid.uuid4().hex[:6]}", "x", b"{}", f"m-{uuid.uuid4().hex}")
    batch = [task(unit, 0), task(unit, 1), missing, task(unit, 3)]
    result = publisher.publish_batch(batch)
    assert result.confirmed == 2
    assert isinstance(result.error, Unroutable)
    assert [m[0] for m in drain(broker_url, unit_queue(unit))][-2:] == [
        batch[0].message_id,
        batch[1].message_id,
    ]
    assert publisher.publish_batch([task(unit, 4)]).confirmed == 1


@pytest.mark.integration
def test_a_nacked_message_is_retried_then_reported_unconfirmed(vhost_url: str):
    # A queue that rejects publishes beyond one message makes RabbitMQ nack the rest.
    with Connection(vhost_url) as conn:
        channel = conn.channel()
        exchange = Exchange("nacktest", type="direct", durable=True)
        Queue(
            "nacktest.full",
            exchange=exchange,
            routing_key="full",
            durable=True,
            queue_arguments={"x-max-length": 1, "x-overflow": "reject-publish"},
        )(channel).declare()
        channel.close()
    batch = [OutgoingMessage("nacktest", "full", b"{}", f"n-{n}") for n in range(3)]
    with Publisher(vhost_url, confirm_timeout=1.0, retries=1) as publisher:
        result = publisher.publish_batch(batch)
    assert result.confirmed == 1
    assert isinstance(result.error, PublishError) and not isinstance(result.error, Unroutable)
    assert "n-1" in str(result.error) and "nack" in str(result.error).lower()
    assert [m[0] for m in drain(vhost_url, "nacktest.full")] == ["n-0"]
