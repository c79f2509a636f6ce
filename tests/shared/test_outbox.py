"""Outbox and relay against a fake publisher, on SQLite and PostgreSQL: order, confirm-then-mark, failures."""

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from prometheus_client import REGISTRY
from shared.db import make_engine
from shared.envelope import Envelope
from shared.logs import correlation_scope
from shared.messaging import PublishError, Unroutable
from shared.naming import TASKS_EXCHANGE
from shared.outbox import (
    OUTBOX_ROW_COLUMNS,
    OutboxItem,
    OutboxRelay,
    add_many_to_outbox,
    add_to_outbox,
    batch_query,
    outbox_row,
    outbox_table,
    prepare_relay_transaction,
    relax_commit_durability,
    steer_planner_to_ordered_scan,
)
from sqlalchemy.orm import Session

from tests.support.polling import wait_until

META = sa.MetaData()
OUTBOX = outbox_table(META)


class FakePublisher:
    """Records publishes; can fail on chosen message ids or for the next N calls."""

    def __init__(self) -> None:
        self.sent: list[dict] = []
        self.fail_ids: set[str] = set()
        self.fail_next = 0
        self.lock = threading.Lock()

    def publish(
        self, *, exchange, routing_key, body, message_id, headers=None, content_type="application/json"
    ):
        with self.lock:
            if self.fail_next > 0:
                self.fail_next -= 1
                raise PublishError("broker down")
            if message_id in self.fail_ids:
                raise Unroutable("no queue bound")
            self.sent.append(
                {
                    "exchange": exchange,
                    "routing_key": routing_key,
                    "body": body,
                    "id": message_id,
                    "headers": headers,
                }
            )


@pytest.fixture
def engine(db_url: str):
    engine = make_engine(db_url)
    META.create_all(engine)
    yield engine
    engine.dispose()


def _add(engine, n: int, **kwargs) -> list[Envelope]:
    envs = [
        Envelope.new(
            "intake.directive_registered", {"n": i, "trích_yếu": "Kế hoạch số 120/KH-BCĐ"}, producer="intake"
        )
        for i in range(n)
    ]
    with engine.begin() as conn:
        for env in envs:
            add_to_outbox(conn, OUTBOX, env, exchange="intake.events", **kwargs)
    return envs


def _rows(engine):
    with engine.connect() as conn:
        return conn.execute(sa.select(OUTBOX).order_by(OUTBOX.c.id)).all()


def test_rows_are_published_in_id_order_and_marked_after_the_confirm(engine):
    envs = _add(engine, 5)
    publisher = FakePublisher()
    relay = OutboxRelay(engine, OUTBOX, publisher, batch_size=3)
    assert relay.run_once() == 3
    assert relay.run_once() == 2
    assert relay.run_once() == 0
    assert [m["id"] for m in publisher.sent] == [e.id for e in envs]
    assert publisher.sent[0]["routing_key"] == "intake.directive_registered.v1"
    assert Envelope.from_bytes(publisher.sent[0]["body"]) == envs[0]
    rows = _rows(engine)
    assert all(r.published_at is not None and r.attempts == 1 and r.last_error is None for r in rows)


def test_the_row_rolls_back_with_the_callers_transaction(engine):
    env = Envelope.new("intake.directive_registered", {}, producer="intake")
    with pytest.raises(RuntimeError), engine.begin() as conn:
        add_to_outbox(conn, OUTBOX, env, exchange="intake.events")
        raise RuntimeError("state change failed")
    assert _rows(engine) == []


def test_outbox_rows_can_be_added_in_an_orm_session_with_explicit_routing(engine):
    env = Envelope.new("routing.task_assigned", {"unit": "PHONG_VHTT"}, producer="routing")
    with Session(engine) as session, session.begin():
        add_to_outbox(
            session, OUTBOX, env, exchange=TASKS_EXCHANGE, routing_key="PHONG_VHTT", headers={"x": "1"}
        )
    (row,) = _rows(engine)
    assert (row.exchange, row.routing_key, row.message_id) == ("routing.tasks", "PHONG_VHTT", env.id)
    assert row.headers == {"x": "1", "correlation_id": env.correlation_id}


def test_many_rows_in_one_insert_keep_their_order_routing_and_correlation(engine):
    envs = [Envelope.new("routing.task_offered", {"đơn_vị": f"U{i}"}, producer="routing") for i in range(4)]
    with engine.begin() as conn:
        add_many_to_outbox(
            conn, OUTBOX, [OutboxItem(env, TASKS_EXCHANGE, f"U{i}") for i, env in enumerate(envs)]
        )
        add_many_to_outbox(conn, OUTBOX, [])  # nothing to queue is not an error
    rows = _rows(engine)
    assert [r.message_id for r in rows] == [e.id for e in envs]
    assert [r.routing_key for r in rows] == ["U0", "U1", "U2", "U3"]
    assert [bytes(r.body) for r in rows] == [e.to_bytes() for e in envs]
    assert all(r.headers == {"correlation_id": e.correlation_id} for r, e in zip(rows, envs, strict=True))
    assert all(r.published_at is None and r.attempts == 0 for r in rows)
    assert len({r.created_at for r in rows}) == 1


def test_the_postgresql_insert_names_every_column_outbox_row_fills():
    # PostgreSQL writes only OUTBOX_ROW_COLUMNS; a field outbox_row() gained would otherwise be dropped there.
    item = OutboxItem(Envelope.new("routing.task_offered", {}, producer="routing"), TASKS_EXCHANGE, "U1")
    assert tuple(outbox_row(item, datetime.now(UTC))) == OUTBOX_ROW_COLUMNS


def test_many_rows_through_a_session_keep_headers_and_vietnamese_intact(engine):
    envs = [
        Envelope.new("routing.task_offered", {"tiêu_đề": f"Báo cáo số {i}"}, producer="routing")
        for i in range(3)
    ]
    with Session(engine) as session, session.begin():
        add_many_to_outbox(
            session,
            OUTBOX,
            [
                OutboxItem(env, "routing.events", headers={"ghi_chú": "khẩn", "lần": i})
                for i, env in enumerate(envs)
            ],
        )
    rows = _rows(engine)
    assert [r.message_id for r in rows] == [e.id for e in envs]
    assert [r.headers["ghi_chú"] for r in rows] == ["khẩn"] * 3
    assert [r.headers["lần"] for r in rows] == [0, 1, 2]
    assert [Envelope.from_bytes(bytes(r.body)).payload["tiêu_đề"] for r in rows] == [
        f"Báo cáo số {i}" for i in range(3)
    ]


def test_correlation_id_travels_in_the_row_headers(engine):
    with correlation_scope("req-77"):
        _add(engine, 1)
    publisher = FakePublisher()
    OutboxRelay(engine, OUTBOX, publisher).run_once()
    assert publisher.sent[0]["headers"]["correlation_id"] == "req-77"


def test_a_failing_row_stops_the_batch_records_the_error_and_is_retried(engine):
    envs = _add(engine, 4)
    publisher = FakePublisher()
    publisher.fail_ids = {envs[2].id}
    relay = OutboxRelay(engine, OUTBOX, publisher)
    with pytest.raises(Unroutable):
        relay.run_once()
    assert [m["id"] for m in publisher.sent] == [envs[0].id, envs[1].id]
    rows = _rows(engine)
    assert [r.published_at is not None for r in rows] == [True, True, False, False]
    assert rows[2].attempts == 1 and "no queue bound" in rows[2].last_error
    publisher.fail_ids = set()
    assert relay.run_once() == 2
    assert [m["id"] for m in publisher.sent] == [e.id for e in envs]
    assert _rows(engine)[2].attempts == 2


def test_on_sqlite_the_service_can_write_while_the_relay_publishes(sqlite_url):
    engine = make_engine(sqlite_url)
    META.create_all(engine)
    _add(engine, 3)
    # A writer that gives up after 50 ms: it fails if the relay holds SQLite's write lock while publishing.
    impatient = sa.create_engine(sqlite_url, connect_args={"timeout": 0.05})

    class WritingPublisher(FakePublisher):
        def publish(self, **kwargs):
            super().publish(**kwargs)
            with impatient.begin() as conn:
                add_to_outbox(
                    conn, OUTBOX, Envelope.new("intake.x", {}, producer="intake"), exchange="intake.events"
                )

    assert OutboxRelay(engine, OUTBOX, WritingPublisher(), batch_size=3).run_once() == 3
    assert len(_rows(engine)) == 6
    impatient.dispose()
    engine.dispose()


def test_backlog_counts_unpublished_rows_and_the_oldest_age(engine):
    relay = OutboxRelay(engine, OUTBOX, FakePublisher(), name="backlog-test")
    assert relay.backlog() == (0, 0.0)
    _add(engine, 3)
    with engine.begin() as conn:
        conn.execute(
            sa.update(OUTBOX)
            .where(OUTBOX.c.id == 1)
            .values(created_at=datetime.now(UTC) - timedelta(seconds=90))
        )
    count, age = relay.backlog()
    assert count == 3
    assert 89 < age < 120
    assert REGISTRY.get_sample_value("docroute_outbox_backlog", {"relay": "backlog-test"}) == 3
    assert REGISTRY.get_sample_value("docroute_outbox_oldest_age_seconds", {"relay": "backlog-test"}) == age
    relay.run_once()
    assert relay.backlog() == (0, 0.0)


def test_the_relay_is_named_after_its_database_by_default(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'intake.db'}")
    assert OutboxRelay(engine, OUTBOX, FakePublisher()).name == "intake"


def test_run_survives_an_outage_and_delivers_when_the_broker_returns(engine):
    envs = _add(engine, 3)
    publisher = FakePublisher()
    publisher.fail_next = 3
    relay = OutboxRelay(engine, OUTBOX, publisher, idle_sleep=0.01, max_backoff=0.05)
    stop = threading.Event()
    thread = threading.Thread(target=relay.run, args=(stop,))
    thread.start()
    deadline = time.monotonic() + 10
    while len(publisher.sent) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    stop.set()
    thread.join(5)
    assert not thread.is_alive()
    assert [m["id"] for m in publisher.sent] == [e.id for e in envs]
    assert _rows(engine)[0].attempts == 4  # three failed rounds, then the confirm


def test_a_wake_up_during_a_round_is_not_lost(engine):
    """Rows committed after a round's query, with their wake-up arriving while it publishes, go next."""
    first = _add(engine, 1)
    late: list[Envelope] = []

    class WakingPublisher(FakePublisher):
        def publish(self, **kwargs):
            super().publish(**kwargs)
            if not late:  # inside the first round: commit another row and wake the relay
                late.extend(_add(engine, 1))
                relay.wake()

    publisher = WakingPublisher()
    relay = OutboxRelay(engine, OUTBOX, publisher, idle_sleep=120.0, busy_sleep=120.0, wakeable=True)
    stop = threading.Event()
    thread = threading.Thread(target=relay.run, args=(stop,))
    thread.start()
    try:
        assert wait_until(lambda: len(publisher.sent) == 2, 10)
        assert [m["id"] for m in publisher.sent] == [first[0].id, late[0].id]
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()


@pytest.mark.integration
def test_two_relays_on_postgresql_never_publish_a_row_twice(pg_url: str):
    engine = make_engine(pg_url)
    META.create_all(engine)
    envs = _add(engine, 200)

    class SlowPublisher(FakePublisher):
        def publish(self, **kwargs):
            time.sleep(0.001)  # keep both relays inside their batches at the same time
            super().publish(**kwargs)

    publisher = SlowPublisher()
    relays = [OutboxRelay(engine, OUTBOX, publisher, batch_size=20) for _ in range(2)]
    barrier = threading.Barrier(2)

    def drain(relay: OutboxRelay) -> None:
        barrier.wait()
        while relay.run_once():
            pass

    threads = [threading.Thread(target=drain, args=(r,)) for r in relays]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    ids = [m["id"] for m in publisher.sent]
    assert len(ids) == len(set(ids)) == 200
    assert set(ids) == {e.id for e in envs}
    assert OutboxRelay(engine, OUTBOX, publisher).backlog()[0] == 0
    engine.dispose()


def test_the_relay_counts_its_backlog_once_per_interval_not_after_every_batch(engine):
    _add(engine, 30)
    relay = OutboxRelay(engine, OUTBOX, FakePublisher(), batch_size=5, busy_sleep=0.0, backlog_interval=60.0)
    counts: list[int] = []
    original = relay.backlog

    def counting_backlog() -> tuple[int, float]:
        counts.append(1)
        return original()

    relay.backlog = counting_backlog  # type: ignore[method-assign]
    stop = threading.Event()
    thread = threading.Thread(target=relay.run, args=(stop,))
    thread.start()
    deadline = time.monotonic() + 10
    while len(relay.publisher.sent) < 30 and time.monotonic() < deadline:  # type: ignore[attr-defined]
        time.sleep(0.01)
    stop.set()
    thread.join(5)
    assert len(relay.publisher.sent) == 30  # type: ignore[attr-defined]
    assert len(counts) == 1  # six full batches, one count


@pytest.mark.integration
def test_on_postgresql_the_relay_reads_pending_rows_in_order_from_the_partial_index(pg_url: str):
    """A long published history and stale statistics must not turn the batch query into a sort."""
    engine = make_engine(pg_url)
    META.create_all(engine)
    with engine.begin() as conn:
        conn.execute(sa.text("ANALYZE outbox"))  # statistics of an empty table, as after a quiet night
    _add(engine, 3000)
    with engine.begin() as conn:
        conn.execute(sa.update(OUTBOX).where(OUTBOX.c.id <= 2500).values(published_at=datetime.now(UTC)))
    with engine.begin() as conn:
        steer_planner_to_ordered_scan(conn)
        compiled = (
            batch_query(OUTBOX, 100)
            .with_for_update(skip_locked=True)
            .compile(engine, compile_kwargs={"literal_binds": True})
        )
        plan = "\n".join(conn.exec_driver_sql(f"EXPLAIN {compiled}").scalars())
    assert "ix_outbox_pending" in plan, plan
    assert "Sort" not in plan, plan
    publisher = FakePublisher()
    assert OutboxRelay(engine, OUTBOX, publisher, batch_size=100).run_once() == 100
    assert publisher.sent[0]["id"] == _rows(engine)[2500].message_id
    engine.dispose()


@pytest.mark.integration
def test_only_the_relays_own_transaction_skips_the_wal_flush_wait(pg_url: str):
    engine = make_engine(pg_url)
    with engine.begin() as conn:
        relax_commit_durability(conn)
        assert conn.exec_driver_sql("SHOW synchronous_commit").scalar_one() == "off"
    with engine.begin() as conn:  # the pooled connection is back to the server's setting
        assert conn.exec_driver_sql("SHOW synchronous_commit").scalar_one() == "on"
    engine.dispose()


@pytest.mark.integration
def test_the_relays_transaction_settings_take_one_statement_and_end_with_it(pg_url: str):
    engine = make_engine(pg_url)
    settings = "SELECT current_setting('enable_sort'), current_setting('enable_bitmapscan'), " + (
        "current_setting('synchronous_commit')"
    )
    with engine.begin() as conn:
        prepare_relay_transaction(conn)
        assert tuple(conn.exec_driver_sql(settings).one()) == ("off", "off", "off")
    with engine.begin() as conn:
        assert tuple(conn.exec_driver_sql(settings).one()) == ("on", "on", "on")
    engine.dispose()
