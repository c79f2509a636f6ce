"""Outages on the real RabbitMQ: a backlog waits out a dependency outage longer than the heartbeat, nothing
is counted against a message or dead-lettered, and a poison message still reaches the DLQ."""

import hashlib
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import sqlalchemy as sa
from kombu import Connection
from prometheus_client import REGISTRY
from shared.db import make_engine
from shared.envelope import Envelope
from shared.health import DependencyHealth
from shared.inbox import claim, inbox_table
from shared.messaging import (
    EventConsumer,
    Publisher,
    Subscription,
    database_probe,
    declare_consumer_queue,
    list_dlq,
)
from shared.objectstore import S3Store

from chaos.proxy import TcpProxy
from tests.support.polling import wait_until as _wait_until

pytestmark = pytest.mark.integration

EXCHANGE = "outagetest.events"
ROUTING_KEY = "intake.directive_registered.v1"
BACKLOG = 24
# Far below the services' 20 s, so that a pause of a few seconds outlasts two heartbeats: without the
# heartbeats kept going, RabbitMQ would close the connection and count a delivery for every unacked message.
HEARTBEAT = 1.0
OUTAGE = 4 * HEARTBEAT + 1.0


def wait_until(predicate: Callable[[], object], timeout: float = 30.0) -> bool:
    return _wait_until(predicate, timeout)


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


class CountingConsumer(EventConsumer):
    """Notes the broker's x-delivery-count of every delivery before the consumer handles it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.deliveries: list[tuple[str, int]] = []
        self.reconnects = 0

    def _handle(self, sub: Subscription, message: Any) -> None:
        headers = message.headers or {}
        count = int(headers.get("x-delivery-count", 0))
        self.deliveries.append((message.properties.get("message_id"), count))
        super()._handle(sub, message)

    def on_connection_revived(self) -> None:
        self.reconnects += 1


@contextmanager
def consuming(consumer: EventConsumer) -> Iterator[None]:
    stop = threading.Event()
    thread = threading.Thread(target=consumer.run, args=(stop,), daemon=True)
    thread.start()
    assert consumer.ready.wait(15), "consumer did not start"
    try:
        yield
    finally:
        stop.set()
        thread.join(10)
        assert not thread.is_alive(), "consumer did not stop"


def directive(n: int) -> Envelope:
    payload = {"số_đến": n, "trích_yếu": "Về việc ứng phó bão số 3 và mưa lũ"}
    return Envelope.new("intake.directive_registered", payload, producer="intake")


def publish(url: str, envs: list[Envelope]) -> None:
    with Publisher(url) as publisher:
        for env in envs:
            publisher.publish(
                exchange=EXCHANGE, routing_key=ROUTING_KEY, body=env.to_bytes(), message_id=env.id
            )


def queue_of(url: str) -> str:
    queue = f"outage_{uuid.uuid4().hex[:8]}.intake.directive_registered"
    with Connection(url) as conn:
        declare_consumer_queue(conn, queue, EXCHANGE, ROUTING_KEY, delivery_limit=2)
    return queue


def test_a_backlog_waits_out_an_outage_longer_than_the_heartbeat_without_counting_deliveries(
    vhost_url: str,
):
    up = threading.Event()
    up.set()
    probes: list[float] = []
    handled: list[str] = []
    poison = directive(0)
    health = DependencyHealth()

    def use_dependency() -> None:
        if not up.is_set():
            raise sa.exc.OperationalError("SELECT 1", {}, Exception("connection refused"))

    def probe() -> None:
        probes.append(time.monotonic())
        use_dependency()

    def handler(env: Envelope) -> None:
        if env.id == poison.id:
            raise ValueError("trích yếu rỗng: không xử lý được")
        use_dependency()
        handled.append(env.id)

    queue = queue_of(vhost_url)
    consumer = CountingConsumer(
        vhost_url,
        [Subscription(queue, EXCHANGE, ROUTING_KEY, handler)],
        delivery_limit=2,
        retry_delay=0.05,
        probes={"database": probe},
        health=health,
        pause_first=0.1,
        pause_cap=0.5,
        heartbeat=HEARTBEAT,
    )
    backlog = [directive(n) for n in range(1, BACKLOG + 1)]
    pauses_before = sample("docroute_consumer_pauses_total", queue=queue, dependency="database")
    with consuming(consumer):
        revived = consumer.reconnects
        assert consumer._active is not None
        assert consumer._active.connection.heartbeat == HEARTBEAT  # negotiated with the broker
        up.clear()
        publish(vhost_url, [*backlog[:10], poison, *backlog[10:]])
        assert wait_until(lambda: sample("docroute_consumer_paused", queue=queue, dependency="database") == 1)
        assert health.down() == {"database": "OperationalError"}
        went_down = time.monotonic()
        # The outage lasts OUTAGE seconds; the consumer keeps probing meanwhile.
        assert wait_until(lambda: probes and probes[-1] - went_down >= OUTAGE, timeout=OUTAGE + 10)
        assert handled == []
        up.set()
        assert wait_until(lambda: len(handled) == BACKLOG and len(list_dlq(vhost_url, queue, 5)) == 1)
        assert wait_until(lambda: sample("docroute_consumer_paused", queue=queue, dependency="database") == 0)
        assert consumer.reconnects == revived, "the broker connection survived the pause"
    assert sorted(handled) == sorted(env.id for env in backlog), "each message handled exactly once"
    counts = {message_id: count for message_id, count in consumer.deliveries if message_id != poison.id}
    assert counts == {env.id: 0 for env in backlog}, "no delivery was counted against a good message"
    poison_counts = [count for message_id, count in consumer.deliveries if message_id == poison.id]
    assert poison_counts == [0, 1], "the poison message used its two deliveries"
    [dead] = list_dlq(vhost_url, queue, 5)
    assert dead.envelope is not None and dead.envelope.id == poison.id
    assert sample("docroute_consumer_pauses_total", queue=queue, dependency="database") == pauses_before + 1
    assert health.down() == {}


@pytest.fixture
def proxied_pg(pg_url: str) -> Iterator[tuple[str, TcpProxy]]:
    """The test's PostgreSQL database reached through a TCP proxy the test can cut and restore."""
    url = sa.make_url(pg_url)
    with TcpProxy((url.host or "127.0.0.1", url.port or 5432)) as proxy:
        yield url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False), proxy


def test_a_postgresql_outage_through_a_cut_proxy_pauses_and_every_directive_is_routed_once(
    vhost_url: str, proxied_pg: tuple[str, TcpProxy]
):
    db_url, proxy = proxied_pg
    meta = sa.MetaData()
    inbox = inbox_table(meta)
    routed = sa.Table(
        "routed",
        meta,
        sa.Column("message_id", sa.String(64), primary_key=True),
        sa.Column("trich_yeu", sa.Text, nullable=False),
    )
    engine = make_engine(db_url, pool_size=2, connect_args={"connect_timeout": 3})
    meta.create_all(engine)
    poison = directive(0)
    health = DependencyHealth()

    def handler(env: Envelope) -> None:
        if env.id == poison.id:
            raise KeyError("nơi_nhận")
        with engine.begin() as conn:
            if claim(conn, inbox, env.id, "outagetest"):
                conn.execute(routed.insert().values(message_id=env.id, trich_yeu=env.payload["trích_yếu"]))

    queue = queue_of(vhost_url)
    consumer = CountingConsumer(
        vhost_url,
        [Subscription(queue, EXCHANGE, ROUTING_KEY, handler)],
        delivery_limit=2,
        retry_delay=0.05,
        probes={"database": database_probe(engine)},
        health=health,
        pause_first=0.1,
        pause_cap=0.5,
        heartbeat=HEARTBEAT,
    )
    backlog = [directive(n) for n in range(1, BACKLOG + 1)]
    try:
        with consuming(consumer):
            publish(vhost_url, backlog[:2])
            assert wait_until(lambda: len(consumer.deliveries) == 2)
            proxy.refuse()  # PostgreSQL gone: open connections dropped, new ones refused
            cut_at = time.monotonic()
            publish(vhost_url, [*backlog[2:12], poison, *backlog[12:]])
            assert wait_until(lambda: "database" in health.down())
            assert sample("docroute_consumer_paused", queue=queue, dependency="database") == 1
            assert wait_until(lambda: time.monotonic() - cut_at >= OUTAGE, timeout=OUTAGE + 5)
            proxy.restore()
            assert wait_until(lambda: len(list_dlq(vhost_url, queue, 5)) == 1)
            with engine.connect() as conn:
                assert wait_until(lambda: _count(conn, routed) == BACKLOG)
            assert wait_until(lambda: health.down() == {})
            assert sample("docroute_consumer_paused", queue=queue, dependency="database") == 0
        with engine.connect() as conn:
            rows = conn.execute(sa.select(routed.c.message_id, routed.c.trich_yeu)).all()
    finally:
        engine.dispose()
    assert sorted(r.message_id for r in rows) == sorted(env.id for env in backlog)
    assert {r.trich_yeu for r in rows} == {"Về việc ứng phó bão số 3 và mưa lũ"}
    counts = [count for message_id, count in consumer.deliveries if message_id != poison.id]
    assert counts == [0] * len(counts), "no delivery was counted against a good message"
    [dead] = list_dlq(vhost_url, queue, 5)
    assert dead.envelope is not None and dead.envelope.id == poison.id


def _count(conn: sa.Connection, table: sa.Table) -> int:
    conn.rollback()  # a fresh snapshot each time
    return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def test_a_frozen_object_store_pauses_the_consumer_and_every_object_is_stored_once(
    vhost_url: str, s3_endpoint: str
):
    host, port = s3_endpoint.rsplit(":", 1)
    bucket = f"outage-{uuid.uuid4().hex[:8]}"
    with TcpProxy((host, int(port))) as proxy:
        # A read timeout longer than two heartbeats: a handler stuck on the frozen store must not cost the
        # broker connection either.
        store = S3Store(
            f"127.0.0.1:{proxy.port}",
            "testing",
            "testing",
            secure=False,
            region="us-east-1",
            connect_timeout=1.0,
            read_timeout=3 * HEARTBEAT,
            probe_bucket=bucket,
        )
        store.ensure_bucket(bucket)
        health = DependencyHealth()

        def handler(env: Envelope) -> None:
            body = env.to_bytes()
            store.put(
                bucket,
                f"directives/{env.id}.json",
                body,
                size=len(body),
                content_type="application/json",
                sha256=hashlib.sha256(body).hexdigest(),
            )

        queue = queue_of(vhost_url)
        consumer = CountingConsumer(
            vhost_url,
            [Subscription(queue, EXCHANGE, ROUTING_KEY, handler)],
            delivery_limit=2,
            probes={"object_store": store.ping},
            probe_timeout=2.0,
            health=health,
            pause_first=0.1,
            pause_cap=0.5,
            heartbeat=HEARTBEAT,
        )
        backlog = [directive(n) for n in range(1, BACKLOG + 1)]
        with consuming(consumer):
            revived = consumer.reconnects
            proxy.freeze()  # the store hangs: requests and probes time out
            frozen_at = time.monotonic()
            publish(vhost_url, backlog)
            assert wait_until(lambda: "object_store" in health.down(), timeout=20)
            assert wait_until(lambda: time.monotonic() - frozen_at >= OUTAGE, timeout=OUTAGE + 5)
            proxy.restore()
            assert wait_until(
                lambda: len(list(store.list_objects(bucket, "directives/"))) == BACKLOG, timeout=60
            )
            assert wait_until(lambda: health.down() == {})
            assert consumer.reconnects == revived, "the broker connection survived the pause"
    counts = [count for _, count in consumer.deliveries]
    assert counts == [0] * BACKLOG, "each message delivered once, nothing counted against it"
    assert list_dlq(vhost_url, queue, 5) == []
