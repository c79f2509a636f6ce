"""The system topology on RabbitMQ: declared by whichever worker starts first; unsubscribed events kept."""

import threading

import pytest
from kombu import Connection, Queue
from shared.envelope import Envelope
from shared.messaging import Publisher, Unroutable, declare_topology, wait_for_topology
from shared.naming import SUBSCRIPTIONS, queue_name, unrouted_name

pytestmark = pytest.mark.integration


def _get(conn: Connection, queue: str):
    return Queue(queue, no_declare=True)(conn.channel()).get(no_ack=True)


def test_every_subscription_queue_exists_after_the_topology_is_declared(vhost_url: str):
    with Connection(vhost_url) as conn:
        declare_topology(conn, delivery_limit=5)
        declare_topology(conn, delivery_limit=5)  # idempotent: a second worker declares the same
        channel = conn.channel()
        for consumer, source, event, _ in SUBSCRIPTIONS:
            name, count, _consumers = channel.queue_declare(queue_name(consumer, source, event), passive=True)
            assert count == 0, name


def test_an_event_nobody_subscribes_to_is_kept_in_the_unrouted_queue_not_refused(vhost_url: str):
    with Connection(vhost_url) as conn:
        declare_topology(conn, delivery_limit=5)
    envelope = Envelope.new("archive.record_archived", {"tên": "Công văn"}, producer="archive")
    with Publisher(vhost_url) as publisher:
        # mandatory is on, yet no basic.return: the alternate exchange took it.
        publisher.publish(
            exchange="archive.events",
            routing_key=envelope.routing_key,
            body=envelope.to_bytes(),
            message_id=envelope.id,
        )
    with Connection(vhost_url) as conn:
        kept = _get(conn, unrouted_name("archive.events"))
    assert kept is not None and kept.properties["message_id"] == envelope.id


def test_a_subscribed_event_reaches_every_subscriber_and_not_the_unrouted_queue(vhost_url: str):
    with Connection(vhost_url) as conn:
        declare_topology(conn, delivery_limit=5)
    envelope = Envelope.new("intake.directive_registered", {"số_đến": 7}, producer="intake")
    with Publisher(vhost_url) as publisher:
        publisher.publish(
            exchange="intake.events",
            routing_key=envelope.routing_key,
            body=envelope.to_bytes(),
            message_id=envelope.id,
        )
    with Connection(vhost_url) as conn:
        for consumer in ("routing", "archive"):
            message = _get(conn, queue_name(consumer, "intake", "directive_registered"))
            assert message is not None and message.properties["message_id"] == envelope.id
        assert _get(conn, unrouted_name("intake.events")) is None


def test_a_task_for_a_unit_without_a_queue_is_still_refused(vhost_url: str):
    # Only events exchanges have a fallback: a task with nowhere to go is a fault the outbox must retry.
    with Connection(vhost_url) as conn:
        declare_topology(conn, delivery_limit=5)
        from shared.messaging import declare_unit_queue

        declare_unit_queue(conn, "SYT")
    with Publisher(vhost_url) as publisher, pytest.raises(Unroutable):
        publisher.publish(exchange="routing.tasks", routing_key="KHONG.CO", body=b"{}", message_id="m-1")


def test_waiting_for_the_topology_gives_up_when_stopped():
    stop = threading.Event()
    stop.set()
    assert wait_for_topology("amqp://guest:guest@127.0.0.1:1//", stop, delivery_limit=5) is False
