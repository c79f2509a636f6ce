"""A dependency outage pauses the consumer (no delivery counted); a message's own failure still retries and
dead-letters: the classifier, the backoff, the probes, readiness, and the consumer with fakes (memory://)."""

import itertools
import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from wsgiref.util import setup_testing_defaults

import psycopg
import pytest
import sqlalchemy.exc
from kombu.exceptions import OperationalError as KombuOperationalError
from prometheus_client import REGISTRY
from shared.envelope import Envelope
from shared.health import DependencyHealth, worker_app
from shared.messaging import (
    DependencyUnavailable,
    EventConsumer,
    PermanentError,
    Publisher,
    PublishError,
    Subscription,
    Unroutable,
    classify_failure,
    list_dlq,
)
from shared.messaging.keepalive import HeartbeatKeeper
from shared.messaging.outages import Backoff, ProbeRunner
from shared.objectstore import ObjectNotFound, StoreUnavailable

from tests.support.polling import wait_until

EXCHANGE = "outagetest.events"
ROUTING_KEY = "intake.directive_registered.v1"
URL = "memory://"


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _raised(
    exc: BaseException, cause: BaseException | None = None, *, from_none: bool = False
) -> BaseException:
    """`exc` as it looks after `raise exc from cause` (or `from None`) inside `except cause`."""
    try:
        try:
            if cause is not None:
                raise cause
            raise exc
        except BaseException as inner:
            if inner is exc:
                raise
            if from_none:
                raise exc from None
            raise exc from inner
    except BaseException as caught:  # noqa: BLE001 - the point is to hand it back
        return caught


# ------------------------------------------------------------------------------------------ classifier


@pytest.mark.parametrize(
    ("error", "dependency"),
    [
        (sqlalchemy.exc.OperationalError("SELECT 1", {}, Exception("connection refused")), "database"),
        (sqlalchemy.exc.InterfaceError("SELECT 1", {}, Exception("connection already closed")), "database"),
        (
            sqlalchemy.exc.DBAPIError("INSERT", {}, Exception("server closed"), connection_invalidated=True),
            "database",
        ),
        (sqlalchemy.exc.TimeoutError("QueuePool limit of size 5 overflow 10 reached"), "database"),
        (sqlalchemy.exc.DisconnectionError("ping failed"), "database"),
        (psycopg.OperationalError("connection failed: Connection refused"), "database"),
        (StoreUnavailable("put: 127.0.0.1:9000 unreachable (MaxRetryError)"), "object_store"),
        (PublishError("broker did not confirm"), "broker"),
        (KombuOperationalError("[Errno 111] Connection refused"), "broker"),
        (DependencyUnavailable("signature_service", "timeout"), "signature_service"),
    ],
)
def test_connection_errors_of_a_dependency_are_an_outage(error: BaseException, dependency: str):
    assert classify_failure(error) == dependency


@pytest.mark.parametrize(
    "error",
    [
        sqlalchemy.exc.IntegrityError("INSERT", {}, Exception("duplicate key value")),
        sqlalchemy.exc.DataError("INSERT", {}, Exception("value too long for type character varying(20)")),
        sqlalchemy.exc.DBAPIError("INSERT", {}, Exception("syntax"), connection_invalidated=False),
        ObjectNotFound("no such key"),
        Unroutable("no queue bound"),
        ValueError("số đến không hợp lệ"),
        KeyError("directive_id"),
        ConnectionError("a builtin error the handler raised itself"),
    ],
)
def test_a_messages_own_errors_are_not_an_outage(error: BaseException):
    assert classify_failure(error) is None


def test_an_outage_wrapped_by_an_adapter_is_still_an_outage():
    wrapped = _raised(RuntimeError("archiving failed"), StoreUnavailable("get: unreachable"))
    assert classify_failure(wrapped) == "object_store"
    implicit = _raised(KeyError("x"), sqlalchemy.exc.OperationalError("q", {}, Exception("down")))
    assert implicit.__cause__ is not None and classify_failure(implicit) == "database"


def test_an_error_raised_from_none_hides_the_outage_it_replaced():
    hidden = _raised(ValueError("bad payload"), StoreUnavailable("down"), from_none=True)
    assert classify_failure(hidden) is None


# ------------------------------------------------------------------------------------- backoff, probes


def test_pause_backoff_doubles_from_half_a_second_up_to_its_cap():
    backoff = Backoff()
    assert [backoff.next() for _ in range(7)] == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    backoff.reset()
    assert backoff.next() == 0.5
    longer = Backoff(0.5, 30.0)
    assert [longer.next() for _ in range(8)] == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]


def test_a_probe_that_answers_raises_or_hangs():
    release = threading.Event()
    started: list[str] = []

    def hangs() -> None:
        started.append("hangs")
        release.wait(10)

    def fails() -> None:
        raise OSError("connection refused")

    runner = ProbeRunner({"ok": lambda: None, "fails": fails, "hangs": hangs}, timeout=0.2)
    stop = threading.Event()
    assert runner.answers("ok", stop)
    assert not runner.answers("fails", stop)
    t0 = time.monotonic()
    assert not runner.answers("hangs", stop)
    assert not runner.answers("hangs", stop)
    assert time.monotonic() - t0 < 2.0
    assert started == ["hangs"], "a probe still running is not started a second time"
    release.set()
    assert wait_until(lambda: runner.answers("hangs", stop))
    assert runner.has_probe("ok") and not runner.has_probe("ldap")


def test_a_set_stop_ends_the_wait_for_a_hanging_probe():
    stop = threading.Event()
    stop.set()
    runner = ProbeRunner({"hangs": lambda: time.sleep(5)}, timeout=30)
    t0 = time.monotonic()
    assert not runner.answers("hangs", stop)
    assert time.monotonic() - t0 < 1.0


# ------------------------------------------------------------------------------------------ readiness


def test_a_dependency_is_down_while_any_reporter_says_so():
    health = DependencyHealth()
    first, second = object(), object()
    health.report_down("database", first, "OperationalError")
    health.report_down("database", second, "OperationalError")
    health.report_up("database", first)
    with pytest.raises(DependencyUnavailable, match="database unavailable"):
        health.check("database")
    health.report_up("database", second)
    health.check("database")
    assert health.down() == {}


def _get(app, path: str) -> tuple[str, dict[str, str], bytes]:
    environ: dict = {"PATH_INFO": path}
    setup_testing_defaults(environ)
    answer: dict = {}

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        answer["status"], answer["headers"] = status, dict(headers)

    body = b"".join(app(environ, start_response))
    return answer["status"], answer["headers"], body


def test_the_worker_readiness_names_the_dependency_a_consumer_waits_for():
    health = DependencyHealth()
    app = worker_app(health)
    assert _get(app, "/readyz")[0] == "200 OK"
    health.report_down("object_store", "consumer-1", "StoreUnavailable")
    status, headers, body = _get(app, "/readyz")
    assert status == "503 Service Unavailable"
    assert headers["Content-Type"] == "application/problem+json"
    assert json.loads(body)["checks"] == {"object_store": "unavailable: StoreUnavailable"}
    assert _get(app, "/healthz")[0] == "200 OK"
    assert b"docroute_consumer_paused" in _get(app, "/metrics")[2]


def test_the_worker_serves_its_readiness_and_metrics_over_http():
    import urllib.error
    import urllib.request

    from shared.health import serve_worker_endpoints

    health = DependencyHealth()
    server = serve_worker_endpoints(0, health, host="127.0.0.1")
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        with urllib.request.urlopen(f"{base}/readyz", timeout=5) as answer:
            assert answer.status == 200
        health.report_down("database", "consumer-1", "OperationalError")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{base}/readyz", timeout=5)
        assert refused.value.code == 503
        assert json.loads(refused.value.read())["detail"] == "not ready: database unavailable"
        with urllib.request.urlopen(f"{base}/metrics", timeout=5) as answer:
            assert b"# HELP docroute_consumer_paused " in answer.read()
    finally:
        server.shutdown()
        server.server_close()


# ------------------------------------------------------------------------------------- heartbeats


class FakeAmqpConnection:
    heartbeat = 0.2

    def __init__(self) -> None:
        self.beats = 0

    def send_heartbeat(self) -> None:
        self.beats += 1


class FakeKombuConnection:
    def __init__(self) -> None:
        self.connection = FakeAmqpConnection()


def test_heartbeats_go_out_only_while_the_consumer_is_busy():
    keeper = HeartbeatKeeper(0.2)
    conn = FakeKombuConnection()
    try:
        with keeper.busy(conn):
            assert wait_until(lambda: conn.connection.beats >= 3, timeout=5)
        after = conn.connection.beats
        time.sleep(0.3)  # no beat may follow once busy() is left (several intervals)
        assert conn.connection.beats == after
    finally:
        keeper.close()


def test_no_heartbeat_is_written_while_the_consumer_settles_a_message():
    keeper = HeartbeatKeeper(0.2)
    conn = FakeKombuConnection()
    try:
        with keeper.busy(conn):
            assert wait_until(lambda: conn.connection.beats >= 1, timeout=5)
            with keeper.exclusive():
                during = conn.connection.beats
                time.sleep(0.3)  # several heartbeat intervals: the helper must wait for the settle
                assert conn.connection.beats == during
            assert wait_until(lambda: conn.connection.beats > during, timeout=5)
    finally:
        keeper.close()


# -------------------------------------------------------------------------- the consumer, with fakes


class FakeDependency:
    """A database the test switches off and on; the handler and the probe both go through it."""

    def __init__(self) -> None:
        self.up = threading.Event()
        self.up.set()
        self.probes = 0

    def use(self) -> None:
        if not self.up.is_set():
            raise sqlalchemy.exc.OperationalError("SELECT 1", {}, Exception("connection refused"))

    def probe(self) -> None:
        self.probes += 1
        self.use()


@pytest.fixture
def queue() -> str:
    return f"outage_{uuid.uuid4().hex[:8]}.intake.directive_registered"


@contextmanager
def consuming(consumer: EventConsumer) -> Iterator[threading.Event]:
    stop = threading.Event()
    thread = threading.Thread(target=consumer.run, args=(stop,), daemon=True)
    thread.start()
    assert consumer.ready.wait(10)
    try:
        yield stop
    finally:
        stop.set()
        thread.join(5)
        assert not thread.is_alive(), "consumer did not stop"


def publish(envs: list[Envelope]) -> None:
    with Publisher(URL) as publisher:
        for env in envs:
            publisher.publish(
                exchange=EXCHANGE, routing_key=ROUTING_KEY, body=env.to_bytes(), message_id=env.id
            )


def directive(n: int) -> Envelope:
    return Envelope.new(
        "intake.directive_registered", {"số": n, "trích_yếu": "Về việc phòng chống bão"}, producer="intake"
    )


def test_an_outage_pauses_the_consumer_and_every_message_is_handled_once_after_it(queue: str):
    db = FakeDependency()
    health = DependencyHealth()
    handled: list[str] = []
    attempts: list[str] = []

    def handler(env: Envelope) -> None:
        attempts.append(env.id)
        db.use()
        handled.append(env.id)

    consumer = EventConsumer(
        URL,
        [Subscription(queue, EXCHANGE, ROUTING_KEY, handler)],
        delivery_limit=2,
        prefetch_count=5,
        probes={"database": db.probe},
        health=health,
        pause_first=0.02,
        pause_cap=0.1,
    )
    envs = [directive(n) for n in range(20)]
    pauses_before = sample("docroute_consumer_pauses_total", queue=queue, dependency="database")
    with consuming(consumer):
        publish(envs[:3])
        assert wait_until(lambda: len(handled) == 3)
        db.up.clear()
        publish(envs[3:])
        assert wait_until(lambda: db.probes >= 10), "the consumer probes while paused"
        assert sample("docroute_consumer_paused", queue=queue, dependency="database") == 1
        assert "database" in health.down()
        assert set(attempts[3:]) == {envs[3].id}, "no other message is taken while paused"
        db.up.set()
        assert wait_until(lambda: len(handled) == 20)
        assert wait_until(lambda: sample("docroute_consumer_paused", queue=queue, dependency="database") == 0)
    assert handled == [env.id for env in envs]
    assert health.down() == {}
    assert sample("docroute_consumer_pauses_total", queue=queue, dependency="database") == pauses_before + 1
    assert sample("docroute_consumer_paused_seconds_total", queue=queue, dependency="database") > 0
    assert list_dlq(URL, queue, 50) == []


def test_a_poison_message_still_reaches_the_dlq_after_the_delivery_limit_in_the_same_run(queue: str):
    db = FakeDependency()
    health = DependencyHealth()
    seen: list[str] = []
    done: list[str] = []
    poison = directive(0)

    def handler(env: Envelope) -> None:
        seen.append(env.id)
        if env.id == poison.id:
            raise ValueError("số đến không hợp lệ")
        db.use()
        done.append(env.id)

    consumer = EventConsumer(
        URL,
        [Subscription(queue, EXCHANGE, ROUTING_KEY, handler)],
        delivery_limit=3,
        retry_delay=0.01,
        probes={"database": db.probe},
        health=health,
        pause_first=0.02,
        pause_cap=0.05,
    )
    good = [directive(n) for n in range(1, 4)]
    with consuming(consumer):
        db.up.clear()
        publish([poison, *good])
        assert wait_until(lambda: "database" in health.down())
        db.up.set()
        assert wait_until(lambda: len(list_dlq(URL, queue, 10)) == 1 and len(done) == 3)
    assert seen.count(poison.id) == 3
    assert sorted(done) == sorted(env.id for env in good)
    [dead] = list_dlq(URL, queue, 10)
    assert dead.envelope is not None and dead.envelope.id == poison.id


def test_a_dependency_that_answers_while_the_handler_keeps_failing_counts_against_the_message(queue: str):
    seen: list[str] = []

    def handler(env: Envelope) -> None:
        seen.append(env.id)
        # Looks like a database outage, but SELECT 1 answers: e.g. a statement this message makes time out.
        raise sqlalchemy.exc.OperationalError("UPDATE", {}, Exception("canceling statement due to timeout"))

    consumer = EventConsumer(
        URL,
        [Subscription(queue, EXCHANGE, ROUTING_KEY, handler)],
        delivery_limit=2,
        retry_delay=0.01,
        probes={"database": lambda: None},
        pause_first=0.01,
        max_in_place_retries=3,
    )
    env = directive(7)
    with consuming(consumer):
        publish([env])
        assert wait_until(lambda: len(list_dlq(URL, queue, 10)) == 1)
    # Three attempts per delivery (the probe answered each time), two deliveries, then the DLQ.
    assert seen == [env.id] * 6


def test_a_permanent_error_after_an_outage_goes_to_the_dlq_and_ends_the_pause(queue: str):
    db = FakeDependency()
    db.up.clear()
    health = DependencyHealth()

    def handler(env: Envelope) -> None:
        if not db.up.is_set():
            db.use()
        raise PermanentError("unusable payload")

    consumer = EventConsumer(
        URL,
        [Subscription(queue, EXCHANGE, ROUTING_KEY, handler)],
        probes={"database": db.probe},
        health=health,
        pause_first=0.01,
        pause_cap=0.02,
    )
    with consuming(consumer):
        publish([directive(1)])
        assert wait_until(lambda: "database" in health.down())
        db.up.set()
        assert wait_until(lambda: len(list_dlq(URL, queue, 10)) == 1)
    assert health.down() == {}


def test_stop_ends_a_pause_promptly_and_the_message_stays_on_the_queue(queue: str):
    db = FakeDependency()
    db.up.clear()
    health = DependencyHealth()
    consumer = EventConsumer(
        URL,
        [Subscription(queue, EXCHANGE, ROUTING_KEY, lambda env: db.use())],
        probes={"database": db.probe},
        health=health,
        pause_first=0.05,
        pause_cap=30.0,
    )
    env = directive(3)
    stop = threading.Event()
    thread = threading.Thread(target=consumer.run, args=(stop,), daemon=True)
    thread.start()
    assert consumer.ready.wait(10)
    publish([env])
    # Deep in the backoff: the next wait is long, so only stop can end it soon.
    assert wait_until(lambda: db.probes >= 6, timeout=20)
    t0 = time.monotonic()
    stop.set()
    thread.join(5)
    assert not thread.is_alive()
    assert time.monotonic() - t0 < 2.0
    assert health.down() == {}
    got: list[str] = []
    with consuming(
        EventConsumer(URL, [Subscription(queue, EXCHANGE, ROUTING_KEY, lambda e: got.append(e.id))])
    ):
        assert wait_until(lambda: got == [env.id])


def test_an_outage_without_a_probe_retries_the_handler_in_place(queue: str):
    calls: list[float] = []

    def handler(env: Envelope) -> None:
        calls.append(time.monotonic())
        if len(calls) < 5:
            raise DependencyUnavailable("signature_service", "connection refused")

    consumer = EventConsumer(
        URL,
        [Subscription(queue, EXCHANGE, ROUTING_KEY, handler)],
        delivery_limit=2,
        pause_first=0.02,
        pause_cap=0.1,
    )
    with consuming(consumer):
        publish([directive(9)])
        assert wait_until(lambda: len(calls) == 5)
    assert list_dlq(URL, queue, 10) == []
    gaps = [b - a for a, b in itertools.pairwise(calls)]
    assert gaps[1] >= 0.04 - 0.005 and gaps[2] >= 0.08 - 0.005, "the waits grow"


def test_the_database_probe_answers_while_the_database_does_and_fails_as_an_outage_when_not(sqlite_url):
    from shared.db import make_engine
    from shared.messaging import database_probe

    working = make_engine(sqlite_url)
    database_probe(working)()
    working.dispose()
    # Nothing listens on the discard port: connection refused, as a stopped server.
    gone = make_engine("postgresql+psycopg://postgres@127.0.0.1:9/x", connect_args={"connect_timeout": 2})
    with pytest.raises(Exception) as failed:
        database_probe(gone)()
    assert classify_failure(failed.value) == "database"
    gone.dispose()
