"""The pooled unit-queue adapter on a real RabbitMQ vhost: requeue, dropped connections, lost queues."""

import socket
import time
import uuid

import pytest
from kombu import Connection
from routing.adapters.unit_queue import KombuUnitQueues

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def vhost(amqp_vhost_factory):
    return amqp_vhost_factory()


@pytest.fixture
def queues(vhost):
    made = KombuUnitQueues(vhost)
    yield made
    made.close()


@pytest.fixture
def code():
    return f"POOL.{uuid.uuid4().hex[:8]}"


def put(url, code, count=1):
    # Confirmed publishes: the queue holds them when put() returns.
    with Connection(url, transport_options={"confirm_publish": True}) as conn:
        producer = conn.Producer()
        for i in range(count):
            producer.publish(
                f'{{"n": {i}}}'.encode(),
                exchange="routing.tasks",
                routing_key=code,
                serializer=None,
                content_type="application/json",
            )


def depth(url, code):
    with Connection(url) as conn:
        return conn.channel().queue_declare(f"routing.tasks.{code}", passive=True).message_count


def depth_once_settled(url, code, expected, timeout=10.0):
    """The queue's depth once it is `expected`, or what it is after `timeout`: messages given back by a
    closed channel or a requeue are ready again only once the broker has processed that, a moment later."""
    deadline = time.monotonic() + timeout
    while (seen := depth(url, code)) != expected and time.monotonic() < deadline:
        time.sleep(0.02)
    return seen


def test_a_failed_poll_gives_its_taken_messages_back(queues, vhost, code):
    queues.declare([code])
    put(vhost, code, 2)
    with pytest.raises(RuntimeError), queues.reader(code) as reader:
        assert reader.get() is not None and reader.get() is not None
        raise RuntimeError("the lease transaction failed")
    assert depth_once_settled(vhost, code, 2) == 2


def test_a_pooled_connection_the_broker_dropped_is_replaced_transparently(queues, vhost, code):
    queues.declare([code])
    put(vhost, code)
    with queues.reader(code) as reader:
        stale = reader.lane
    # As if the broker or a firewall had cut it while it sat idle in the pool.
    stale.connection.connection.transport.sock.shutdown(socket.SHUT_RDWR)
    with queues.reader(code) as reader:
        message = reader.get()
        assert message is not None
        message.ack()
        assert reader.lane is not stale
    assert depth(vhost, code) == 0


def test_a_queue_deleted_behind_the_pool_is_declared_again(queues, vhost, code):
    with queues.reader(code) as reader:
        assert reader.get() is None
    with Connection(vhost) as conn:
        conn.channel().queue_delete(f"routing.tasks.{code}")
    with queues.reader(code) as reader:
        assert reader.get() is None
    assert depth(vhost, code) == 0  # it exists again, so offers have somewhere to go


def test_depths_count_ready_messages_and_skip_missing_queues(queues, vhost, code):
    queues.declare([code])
    put(vhost, code, 3)
    assert queues.depths([f"{code}.missing", code]) == {code: 3}


def test_get_many_takes_what_is_ready_in_order_and_one_multiple_ack_settles_it(queues, vhost, code):
    queues.declare([code])
    put(vhost, code, 7)
    with queues.reader(code) as reader:
        taken = reader.get_many(5)
        assert [m.body for m in taken] == [f'{{"n": {i}}}'.encode() for i in range(5)]
        reader.ack(taken)
        rest = reader.get_many(10)  # fewer ready than asked: the two left, then nothing
        assert [m.body for m in rest] == [b'{"n": 5}', b'{"n": 6}']
        assert reader.get_many(10) == []
        reader.ack(rest)
        lane = reader.lane
    assert depth(vhost, code) == 0
    # Every message settled: the channel went back to the pool, and closing it gives nothing back.
    with queues.reader(code) as reader:
        assert reader.lane is lane
    queues.close()
    assert depth(vhost, code) == 0


def test_messages_taken_by_get_many_and_not_acked_go_back(queues, vhost, code):
    queues.declare([code])
    put(vhost, code, 4)
    with pytest.raises(RuntimeError), queues.reader(code) as reader:
        taken = reader.get_many(4)
        assert len(taken) == 4
        reader.ack(taken[:1])  # not every unsettled message: acked one by one
        raise RuntimeError("the lease transaction failed")
    assert depth_once_settled(vhost, code, 3) == 3
