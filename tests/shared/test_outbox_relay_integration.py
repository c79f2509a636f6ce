"""The outbox relay on the real RabbitMQ: crash mid-batch and broker outage; every event arrives once."""

import socket
import subprocess
import sys
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa
from kombu import Connection, Queue
from shared.db import make_engine
from shared.envelope import Envelope
from shared.inbox import claim, inbox_table
from shared.messaging import EventConsumer, Publisher, Subscription, body_bytes, declare_consumer_queue
from shared.outbox import OutboxRelay, add_to_outbox, outbox_table

from tests.support.polling import wait_until as _wait_until

pytestmark = pytest.mark.integration

RELAY_SCRIPT = Path(__file__).with_name("outbox_relay_proc.py")
EXCHANGE = "intake.events"
ROUTING_KEY = "intake.directive_registered.v1"


def wait_until(predicate: Callable[[], object], timeout: float = 20.0) -> bool:
    return _wait_until(predicate, timeout)


@pytest.fixture
def queue() -> str:
    return f"archive_{uuid.uuid4().hex[:8]}.intake.directive_registered"


PRODUCER_META = sa.MetaData()
OUTBOX = outbox_table(PRODUCER_META)


class InboxConsumer:
    """The consuming side: counts raw deliveries and the effects its inbox let through."""

    def __init__(self, url: str, queue: str, db_url: str) -> None:
        self.engine = make_engine(db_url)
        meta = sa.MetaData()
        self.inbox = inbox_table(meta)
        self.effects = sa.Table("effects", meta, sa.Column("message_id", sa.String, primary_key=True))
        meta.create_all(self.engine)
        self.deliveries: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.consumer = EventConsumer(url, [Subscription(queue, EXCHANGE, ROUTING_KEY, self.handle)])

    def handle(self, env: Envelope) -> None:
        with self.lock:
            self.deliveries[env.id] += 1
        with self.engine.begin() as conn:
            if claim(conn, self.inbox, env.id, "archive"):
                conn.execute(sa.insert(self.effects).values(message_id=env.id))

    def effect_ids(self) -> list[str]:
        with self.engine.connect() as conn:
            return conn.execute(sa.select(self.effects.c.message_id)).scalars().all()


@contextmanager
def running(consumer: InboxConsumer) -> Iterator[InboxConsumer]:
    stop = threading.Event()
    thread = threading.Thread(target=consumer.consumer.run, args=(stop,), daemon=True)
    thread.start()
    assert consumer.consumer.ready.wait(10)
    try:
        yield consumer
    finally:
        stop.set()
        thread.join(5)
        consumer.engine.dispose()


def write_events(engine, n: int) -> list[str]:
    ids = []
    with engine.begin() as conn:
        for i in range(n):
            env = Envelope.new(
                "intake.directive_registered", {"n": i, "nơi_nhận": "UBND huyện"}, producer="intake"
            )
            add_to_outbox(conn, OUTBOX, env, exchange=EXCHANGE)
            ids.append(env.id)
    return ids


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_relay_killed_mid_batch_and_restarted_delivers_every_event_once_after_the_inbox(
    rabbit_url: str, queue: str, pg_url: str, sqlite_url: str
):
    producer_engine = make_engine(pg_url)
    PRODUCER_META.create_all(producer_engine)
    n = 120
    ids = write_events(producer_engine, n)
    with running(InboxConsumer(rabbit_url, queue, sqlite_url)) as side:
        # 5 ms per row slept between the broker's confirm of a 50-row batch and its mark: the kill lands
        # while confirmed rows are not yet recorded, so they are published again after the restart.
        first = subprocess.Popen([sys.executable, str(RELAY_SCRIPT), pg_url, rabbit_url, "0.005"])
        try:
            assert wait_until(lambda: sum(side.deliveries.values()) >= 30), "relay never got going"
        finally:
            first.kill()  # SIGKILL: no chance to commit the batch in flight
            first.wait(10)
        assert len(side.deliveries) < n, "the kill came too late to interrupt the relay"
        second = subprocess.Popen([sys.executable, str(RELAY_SCRIPT), pg_url, rabbit_url])
        try:
            assert wait_until(lambda: len(side.deliveries) == n), f"{len(side.deliveries)} of {n} arrived"
            relay = OutboxRelay(producer_engine, OUTBOX, Publisher(rabbit_url))
            assert wait_until(lambda: relay.backlog()[0] == 0)
        finally:
            second.terminate()
            assert second.wait(10) == 0, "the relay did not stop cleanly on SIGTERM"
        assert set(side.deliveries) == set(ids)
        # At least once on the wire (the killed batch is sent again), exactly once behind the inbox.
        assert sum(side.deliveries.values()) >= n
        effect_ids = side.effect_ids()
    assert len(effect_ids) == len(set(effect_ids)) == n
    assert set(effect_ids) == set(ids)
    producer_engine.dispose()


def test_events_written_during_a_broker_outage_are_delivered_when_it_returns(
    rabbit_url: str, queue: str, sqlite_url: str, tmp_path
):
    producer_engine = make_engine(f"sqlite:///{tmp_path / 'intake.db'}")
    PRODUCER_META.create_all(producer_engine)
    ids = write_events(producer_engine, 20)

    down = Publisher(f"amqp://guest:guest@127.0.0.1:{closed_port()}//", confirm_timeout=0.3, retries=1)
    relay = OutboxRelay(producer_engine, OUTBOX, down, idle_sleep=0.01, max_backoff=0.05)
    stop = threading.Event()
    thread = threading.Thread(target=relay.run, args=(stop,))
    thread.start()
    assert wait_until(lambda: relay_attempts(producer_engine) >= 2, timeout=10)
    stop.set()
    thread.join(5)
    assert not thread.is_alive(), "relay did not stop during the outage"
    assert relay.backlog()[0] == 20
    with producer_engine.connect() as conn:
        assert "PublishError" in conn.execute(sa.select(OUTBOX.c.last_error).where(OUTBOX.c.id == 1)).scalar()

    with running(InboxConsumer(rabbit_url, queue, sqlite_url)) as side:
        relay.publisher = Publisher(rabbit_url, confirm_timeout=2.0)
        stop = threading.Event()
        thread = threading.Thread(target=relay.run, args=(stop,))
        thread.start()
        try:
            assert wait_until(lambda: len(side.effect_ids()) == 20)
        finally:
            stop.set()
            thread.join(5)
        assert sorted(side.effect_ids()) == sorted(ids)
        assert set(side.deliveries.values()) == {1}
    assert relay.backlog() == (0, 0.0)
    producer_engine.dispose()


def relay_attempts(engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.select(OUTBOX.c.attempts).where(OUTBOX.c.id == 1)).scalar() or 0)


def test_the_relay_publishes_unit_tasks_to_the_unit_queue(rabbit_url: str, sqlite_url: str):
    from shared.messaging import declare_unit_queue
    from shared.naming import TASKS_EXCHANGE, unit_queue

    with Connection(rabbit_url) as conn:
        declare_unit_queue(conn, "PHONG_VHTT")
    engine = make_engine(sqlite_url)
    PRODUCER_META.create_all(engine)
    env = Envelope.new(
        "routing.task_assigned", {"unit": "PHONG_VHTT", "vai_trò": "chu_tri"}, producer="routing"
    )
    with engine.begin() as conn:
        add_to_outbox(conn, OUTBOX, env, exchange=TASKS_EXCHANGE, routing_key="PHONG_VHTT")
    with Publisher(rabbit_url) as publisher:
        assert OutboxRelay(engine, OUTBOX, publisher).run_once() == 1
    with Connection(rabbit_url) as conn:
        channel = conn.channel()
        message = Queue(unit_queue("PHONG_VHTT"), no_declare=True)(channel).get(no_ack=True)
        assert message is not None
        assert Envelope.from_bytes(body_bytes(message)) == env
    engine.dispose()


def test_quorum_topology_is_declared_with_a_delivery_limit(rabbit_url: str, queue: str):
    import amqp.exceptions
    from kombu import Exchange

    with Connection(rabbit_url) as conn:
        declare_consumer_queue(conn, queue, EXCHANGE, ROUTING_KEY, delivery_limit=4)
        # Re-declaring as a classic queue must clash: proof the queue is quorum with those arguments.
        with pytest.raises(amqp.exceptions.PreconditionFailed):
            Queue(queue, Exchange(EXCHANGE, "topic"), ROUTING_KEY, durable=True)(conn.channel()).declare()
    with Connection(rabbit_url) as conn:
        # Same arguments again: idempotent.
        declare_consumer_queue(conn, queue, EXCHANGE, ROUTING_KEY, delivery_limit=4)
        with pytest.raises(amqp.exceptions.PreconditionFailed):
            declare_consumer_queue(conn, queue, EXCHANGE, ROUTING_KEY, delivery_limit=9)
