"""One behaviour suite for publisher, consumer and DLQ tools, run on memory:// and on the real RabbitMQ."""

import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import sqlalchemy as sa
from kombu import Connection, Queue
from prometheus_client import REGISTRY
from shared.db import make_engine
from shared.envelope import Envelope
from shared.inbox import claim, inbox_table
from shared.logs import correlation_scope, current_correlation_id
from shared.messaging import (
    EventConsumer,
    PermanentError,
    Publisher,
    Subscription,
    Unroutable,
    declare_events_exchange,
    declare_unit_queue,
    list_dlq,
    replay_dlq,
)
from shared.naming import TASKS_EXCHANGE, dlq_name

from tests.support.polling import wait_until

# Not intake.events: the memory transport is process-wide, and other test folders' queues may be bound there.
EXCHANGE = "sharedtest.events"
ROUTING_KEY = "intake.directive_registered.v1"


@pytest.fixture
def queue() -> str:
    # The memory transport keeps its queues for the whole process: every test gets its own names.
    return f"test_{uuid.uuid4().hex[:8]}.intake.directive_registered"


@contextmanager
def consuming(
    url: str, subscriptions: list[Subscription], delivery_limit: int = 3
) -> Iterator[EventConsumer]:
    consumer = EventConsumer(url, subscriptions, delivery_limit=delivery_limit, retry_delay=0.02)
    stop = threading.Event()
    thread = threading.Thread(target=consumer.run, args=(stop,), daemon=True)
    thread.start()
    assert consumer.ready.wait(10), "consumer did not start"
    try:
        yield consumer
    finally:
        stop.set()
        thread.join(5)
        assert not thread.is_alive(), "consumer did not stop"


def send(publisher: Publisher, env: Envelope) -> None:
    publisher.publish(exchange=EXCHANGE, routing_key=env.routing_key, body=env.to_bytes(), message_id=env.id)


def directive(**payload) -> Envelope:
    return Envelope.new(
        "intake.directive_registered", payload or {"trích_yếu": "Về việc chuyển đổi số"}, producer="intake"
    )


def queue_depth(url: str, name: str) -> int:
    """The messages ready in the queue (a passive declare: nothing is taken, so nothing has to come back)."""
    with Connection(url) as conn:
        channel = conn.channel()
        _, count, _ = channel.queue_declare(name, passive=True)
        channel.close()
    return int(count)


def counter(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_a_handled_message_is_acked_once_with_its_payload_intact(broker_url, queue, publisher):
    got: list[Envelope] = []
    consumed_before = counter("docroute_events_consumed_total", queue=queue)
    with consuming(broker_url, [Subscription(queue, EXCHANGE, ROUTING_KEY, got.append)]):
        env = directive(trích_yếu="Tăng cường an toàn thông tin mạng, Sở Thông tin và Truyền thông")
        send(publisher, env)
        assert wait_until(lambda: len(got) == 1)
        time.sleep(0.2)  # a second delivery would show up here
    assert got == [env]
    assert queue_depth(broker_url, queue) == 0
    assert queue_depth(broker_url, dlq_name(queue)) == 0
    assert counter("docroute_events_consumed_total", queue=queue) == consumed_before + 1


def test_a_transient_failure_is_retried_then_succeeds(broker_url, queue, publisher):
    calls: list[str] = []

    def flaky(env: Envelope) -> None:
        calls.append(env.id)
        if len(calls) < 3:
            raise ConnectionError("database briefly unavailable")

    with consuming(broker_url, [Subscription(queue, EXCHANGE, ROUTING_KEY, flaky)], delivery_limit=5):
        env = directive()
        send(publisher, env)
        assert wait_until(lambda: len(calls) == 3)
        time.sleep(0.2)
    assert calls == [env.id] * 3
    assert counter("docroute_events_retried_total", queue=queue) == 2
    assert queue_depth(broker_url, queue) == 0
    assert list_dlq(broker_url, queue, 10) == []


def test_an_always_failing_message_lands_in_the_dlq_after_the_delivery_limit(broker_url, queue, publisher):
    calls: list[str] = []

    def broken(env: Envelope) -> None:
        calls.append(env.id)
        raise RuntimeError("bug")

    with consuming(broker_url, [Subscription(queue, EXCHANGE, ROUTING_KEY, broken)], delivery_limit=3):
        env = directive()
        send(publisher, env)
        assert wait_until(lambda: queue_depth(broker_url, dlq_name(queue)) == 1)
        time.sleep(0.2)
    assert calls == [env.id] * 3
    (dead,) = list_dlq(broker_url, queue, 10)
    assert dead.envelope == env
    assert dead.reason == "delivery_limit"
    assert (
        str(dead) == f"[delivery_limit] {EXCHANGE} {ROUTING_KEY}: intake.directive_registered v1 id={env.id}"
    )
    assert (dead.exchange, dead.routing_key, dead.queue) == (EXCHANGE, ROUTING_KEY, queue)
    assert counter("docroute_events_dead_lettered_total", queue=queue, reason="delivery_limit") == 1
    # Listing leaves the message in place (ready again once the broker has processed the requeue).
    assert wait_until(lambda: len(list_dlq(broker_url, queue, 10)) == 1)


def test_a_malformed_message_is_dead_lettered_at_once_without_calling_the_handler(
    broker_url, queue, publisher
):
    calls: list[Envelope] = []
    with consuming(broker_url, [Subscription(queue, EXCHANGE, ROUTING_KEY, calls.append)]):
        publisher.publish(exchange=EXCHANGE, routing_key=ROUTING_KEY, body=b"{not json", message_id="bad-1")
        assert wait_until(lambda: queue_depth(broker_url, dlq_name(queue)) == 1)
    assert calls == []
    (dead,) = list_dlq(broker_url, queue, 10)
    assert dead.envelope is None
    assert dead.body == b"{not json"
    assert dead.reason == "rejected"
    assert str(dead) == f"[rejected] {EXCHANGE} {ROUTING_KEY}: malformed body {{not json"


def test_a_permanent_error_dead_letters_after_one_attempt(broker_url, queue, publisher):
    calls: list[str] = []

    def refuse(env: Envelope) -> None:
        calls.append(env.id)
        raise PermanentError("directive refers to an unknown unit")

    with consuming(broker_url, [Subscription(queue, EXCHANGE, ROUTING_KEY, refuse)], delivery_limit=5):
        send(publisher, directive())
        assert wait_until(lambda: queue_depth(broker_url, dlq_name(queue)) == 1)
    assert len(calls) == 1
    assert list_dlq(broker_url, queue, 1)[0].reason == "rejected"


def test_a_duplicate_message_id_is_processed_once_through_the_inbox(broker_url, queue, publisher, tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'consumer.db'}")
    meta = sa.MetaData()
    inbox = inbox_table(meta)
    effects = sa.Table("effects", meta, sa.Column("id", sa.String, primary_key=True))
    meta.create_all(engine)
    deliveries: list[str] = []

    def handler(env: Envelope) -> None:
        deliveries.append(env.id)
        with engine.begin() as conn:
            if not claim(conn, inbox, env.id, "archive"):
                return
            conn.execute(sa.insert(effects).values(id=env.id))

    with consuming(broker_url, [Subscription(queue, EXCHANGE, ROUTING_KEY, handler)]):
        env = directive()
        send(publisher, env)
        send(publisher, env)
        assert wait_until(lambda: len(deliveries) == 2)
    with engine.connect() as conn:
        assert conn.execute(sa.select(effects.c.id)).scalars().all() == [env.id]
    assert queue_depth(broker_url, queue) == 0
    engine.dispose()


def test_the_correlation_id_travels_in_headers_and_is_restored_for_the_handler(broker_url, queue, publisher):
    seen: list[tuple[str, str | None]] = []
    outer = current_correlation_id()
    with consuming(
        broker_url,
        [
            Subscription(
                queue,
                EXCHANGE,
                ROUTING_KEY,
                lambda env: seen.append((env.correlation_id, current_correlation_id())),
            )
        ],
    ):
        with correlation_scope("req-hcm-1"):
            send(publisher, directive())
        assert wait_until(lambda: len(seen) == 1)
    assert seen == [("req-hcm-1", "req-hcm-1")]
    assert current_correlation_id() == outer


def test_published_messages_carry_headers_and_properties(broker_url, queue, publisher):
    with consuming(broker_url, [Subscription(queue, EXCHANGE, ROUTING_KEY, lambda env: None)]):
        pass  # declare the queue, then stop consuming so the message stays
    env = directive()
    with correlation_scope("req-2"):
        publisher.publish(
            exchange=EXCHANGE,
            routing_key=ROUTING_KEY,
            body=env.to_bytes(),
            message_id=env.id,
            headers={"k": "v"},
        )
    with Connection(broker_url) as conn:
        channel = conn.channel()
        assert wait_until(lambda: queue_depth(broker_url, queue) == 1)
        message = Queue(queue, no_declare=True)(channel).get(no_ack=True)
        channel.close()
    assert message.headers["correlation_id"] == "req-2"
    assert message.headers["k"] == "v"
    assert message.properties["message_id"] == env.id
    assert message.properties["delivery_mode"] == 2
    assert message.content_type == "application/json"


def test_confirmed_publishes_are_counted(broker_url, queue, publisher):
    with consuming(broker_url, [Subscription(queue, EXCHANGE, ROUTING_KEY, lambda env: None)]):
        before = counter("docroute_events_published_total", exchange=EXCHANGE)
        send(publisher, directive())
        assert counter("docroute_events_published_total", exchange=EXCHANGE) == before + 1


def test_retries_pause_longer_each_delivery(broker_url, queue, publisher):
    stamps: list[float] = []

    def broken(env: Envelope) -> None:
        stamps.append(time.monotonic())
        raise RuntimeError("still down")

    consumer = EventConsumer(
        broker_url, [Subscription(queue, EXCHANGE, ROUTING_KEY, broken)], delivery_limit=3, retry_delay=0.1
    )
    stop = threading.Event()
    thread = threading.Thread(target=consumer.run, args=(stop,), daemon=True)
    thread.start()
    try:
        assert consumer.ready.wait(10)
        send(publisher, directive())
        assert wait_until(lambda: len(stamps) == 3)
    finally:
        stop.set()
        thread.join(5)
    assert stamps[1] - stamps[0] >= 0.1
    assert stamps[2] - stamps[1] >= 0.2


def test_an_unroutable_message_raises(broker_url, publisher):
    # A task for a unit that has no queue has nowhere to go: mandatory makes that an error to retry.
    with Connection(broker_url) as conn:
        declare_unit_queue(conn, "HAS.A.QUEUE")
    with pytest.raises(Unroutable):
        publisher.publish(exchange=TASKS_EXCHANGE, routing_key="NO.QUEUE", body=b"{}", message_id="u-1")
    with pytest.raises(Unroutable):
        publisher.publish(
            exchange=f"missing-{uuid.uuid4().hex[:6]}", routing_key="x", body=b"{}", message_id="u-2"
        )


def test_an_event_nobody_subscribes_to_is_not_an_error(broker_url, publisher):
    # Events exchanges have an alternate exchange on RabbitMQ (the event is kept there); memory:// drops it.
    with Connection(broker_url) as conn:
        declare_events_exchange(conn, "sharedtest")
    publisher.publish(
        exchange=EXCHANGE, routing_key="sharedtest.nobody_listens.v1", body=b"{}", message_id="u-3"
    )


def test_replay_puts_dead_letters_back_on_the_original_queue(broker_url, queue, publisher):
    def broken(env: Envelope) -> None:
        raise PermanentError("not yet")

    with consuming(broker_url, [Subscription(queue, EXCHANGE, ROUTING_KEY, broken)]):
        envs = [directive(n=i) for i in range(3)]
        for env in envs:
            send(publisher, env)
        assert wait_until(lambda: queue_depth(broker_url, dlq_name(queue)) == 3)
    assert [d.envelope.id for d in list_dlq(broker_url, dlq_name(queue), 10)] == [e.id for e in envs]
    # The listing gave them back; replay takes what is ready, so wait until all three are.
    assert wait_until(lambda: queue_depth(broker_url, dlq_name(queue)) == 3)
    assert replay_dlq(broker_url, queue, 2) == 2
    assert queue_depth(broker_url, dlq_name(queue)) == 1
    assert replay_dlq(broker_url, queue, 10) == 1
    assert queue_depth(broker_url, dlq_name(queue)) == 0
    got: list[Envelope] = []
    with consuming(broker_url, [Subscription(queue, EXCHANGE, ROUTING_KEY, got.append)]):
        assert wait_until(lambda: len(got) == 3)
    assert sorted(e.id for e in got) == sorted(e.id for e in envs)


def test_the_consumer_stops_promptly(broker_url, queue):
    consumer = EventConsumer(broker_url, [Subscription(queue, EXCHANGE, ROUTING_KEY, lambda env: None)])
    stop = threading.Event()
    thread = threading.Thread(target=consumer.run, args=(stop,))
    thread.start()
    assert consumer.ready.wait(10)
    t0 = time.monotonic()
    stop.set()
    thread.join(5)
    assert not thread.is_alive()
    assert time.monotonic() - t0 < 1.0
