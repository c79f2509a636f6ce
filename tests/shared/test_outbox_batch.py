"""The relay with a batch-capable publisher: confirmed prefix marked at once, failures, idle pacing."""

import os
import socket
import threading
import uuid

import pytest
import sqlalchemy as sa
from kombu import Connection
from shared.db import make_engine
from shared.envelope import Envelope
from shared.messaging import (
    BatchResult,
    OutgoingMessage,
    Publisher,
    PublishError,
    Unroutable,
    declare_unit_queue,
)
from shared.naming import TASKS_EXCHANGE
from shared.outbox import PUBLISHER_HEADER, BatchPublisher, OutboxRelay, add_to_outbox, outbox_table

from tests.support.polling import wait_until

META = sa.MetaData()
OUTBOX = outbox_table(META)


class FakeBatchPublisher:
    """Confirms each batch up to a chosen failing message id; records the batches it was handed."""

    def __init__(self) -> None:
        self.batches: list[list[OutgoingMessage]] = []
        self.fail: dict[str, PublishError] = {}

    def publish(self, **kwargs: object) -> None:
        raise AssertionError("the relay must use publish_batch when the publisher has it")

    def publish_batch(self, messages):
        self.batches.append(list(messages))
        for i, message in enumerate(messages):
            if message.message_id in self.fail:
                return BatchResult(i, self.fail[message.message_id])
        return BatchResult(len(messages))


@pytest.fixture
def engine(db_url: str):
    engine = make_engine(db_url)
    META.create_all(engine)
    yield engine
    engine.dispose()


def _add(engine, n: int, *, routing_keys: list[str] | None = None) -> list[Envelope]:
    envs = [
        Envelope.new("routing.task_assigned", {"n": i, "vai_trò": "chủ trì"}, producer="routing")
        for i in range(n)
    ]
    with engine.begin() as conn:
        for i, env in enumerate(envs):
            key = routing_keys[i] if routing_keys else None
            add_to_outbox(
                conn, OUTBOX, env, exchange=TASKS_EXCHANGE if key else "routing.events", routing_key=key
            )
    return envs


def _rows(engine):
    with engine.connect() as conn:
        return conn.execute(sa.select(OUTBOX).order_by(OUTBOX.c.id)).all()


def test_the_real_publisher_is_used_as_a_batch_publisher():
    assert isinstance(Publisher("memory://"), BatchPublisher)


def test_a_batch_is_handed_over_whole_in_id_order_and_marked(engine):
    envs = _add(engine, 7)
    publisher = FakeBatchPublisher()
    relay = OutboxRelay(engine, OUTBOX, publisher, batch_size=5)
    assert relay.run_once() == 5
    assert relay.run_once() == 2
    assert relay.run_once() == 0
    assert [len(b) for b in publisher.batches] == [5, 2]
    sent = [m for b in publisher.batches for m in b]
    assert [m.message_id for m in sent] == [e.id for e in envs]
    assert Envelope.from_bytes(sent[0].body) == envs[0]
    # The row's headers, and the relay that published it (host/pid/relay name).
    assert sent[0].headers == {
        "correlation_id": envs[0].correlation_id,
        PUBLISHER_HEADER: f"{socket.gethostname()}/{os.getpid()}/{relay.name}",
    }
    assert all(r.published_at is not None and r.attempts == 1 and r.last_error is None for r in _rows(engine))


def test_only_the_confirmed_prefix_is_marked_and_the_failure_is_recorded(engine):
    envs = _add(engine, 5)
    publisher = FakeBatchPublisher()
    publisher.fail = {envs[2].id: Unroutable("no queue bound for PHONG_X")}
    relay = OutboxRelay(engine, OUTBOX, publisher)
    with pytest.raises(Unroutable):
        relay.run_once()
    rows = _rows(engine)
    assert [r.published_at is not None for r in rows] == [True, True, False, False, False]
    assert rows[2].attempts == 1 and rows[2].last_error == "Unroutable: no queue bound for PHONG_X"
    # Rows after the failed one were handed over but not confirmed in order: untouched, sent again later.
    assert [(r.attempts, r.last_error) for r in rows[3:]] == [(0, None), (0, None)]
    publisher.fail = {}
    assert relay.run_once() == 3
    assert [m.message_id for m in publisher.batches[-1]] == [e.id for e in envs[2:]]
    assert [r.attempts for r in _rows(engine)] == [1, 1, 2, 1, 1]


def test_rows_sent_without_a_confirm_are_named_in_the_log(engine, caplog):
    """They may still reach the broker and be sent again: a copy must be accountable to its relay."""
    envs = _add(engine, 4)
    publisher = FakeBatchPublisher()
    publisher.fail = {envs[1].id: PublishError("broker did not confirm")}
    relay = OutboxRelay(engine, OUTBOX, publisher, name="routing")
    with caplog.at_level("WARNING", logger="shared.outbox"), pytest.raises(PublishError):
        relay.run_once()
    (record,) = [r for r in caplog.records if getattr(r, "in_doubt", None)]
    assert record.in_doubt == [e.id for e in envs[1:]]
    assert record.publisher == relay.identity() == f"{socket.gethostname()}/{os.getpid()}/routing"


def test_a_failure_on_the_first_row_marks_nothing(engine):
    envs = _add(engine, 3)
    publisher = FakeBatchPublisher()
    publisher.fail = {envs[0].id: PublishError("broker did not confirm")}
    with pytest.raises(PublishError):
        OutboxRelay(engine, OUTBOX, publisher).run_once()
    rows = _rows(engine)
    assert [r.published_at for r in rows] == [None, None, None]
    assert "broker did not confirm" in rows[0].last_error


class RecordingStop(threading.Event):
    """A stop event that records every pause the relay takes and stops after a given number."""

    def __init__(self, pauses: int) -> None:
        super().__init__()
        self.pauses: list[float] = []
        self.left = pauses

    def wait(self, timeout: float | None = None) -> bool:
        self.pauses.append(timeout or 0.0)
        self.left -= 1
        if self.left <= 0:
            self.set()
        return self.is_set()


def test_run_goes_on_at_once_after_a_full_batch_and_paces_idle_polls(engine):
    _add(engine, 5)
    publisher = FakeBatchPublisher()
    relay = OutboxRelay(engine, OUTBOX, publisher, batch_size=2, idle_sleep=0.2, busy_sleep=0.01)
    stop = RecordingStop(pauses=6)
    relay.run(stop)
    # Rounds: 2 (full, no pause), 2 (full, no pause), 1 (busy pause), then empty rounds doubling to idle.
    assert [len(b) for b in publisher.batches] == [2, 2, 1]
    assert stop.pauses == [0.01, 0.02, 0.04, 0.08, 0.16, 0.2]


@pytest.mark.integration
def test_the_relay_on_rabbitmq_stops_at_an_unroutable_task_and_resumes_when_its_queue_exists(
    rabbit_url: str, sqlite_url: str
):
    known, late = (f"UNIT_{uuid.uuid4().hex[:6].upper()}" for _ in range(2))
    with Connection(rabbit_url) as conn:
        declare_unit_queue(conn, known)
    engine = make_engine(sqlite_url)
    META.create_all(engine)
    envs = _add(engine, 5, routing_keys=[known, known, late, known, known])
    with Publisher(rabbit_url, confirm_timeout=2.0, retries=1) as publisher:
        relay = OutboxRelay(engine, OUTBOX, publisher)
        with pytest.raises(Unroutable):
            relay.run_once()
        assert [r.published_at is not None for r in _rows(engine)] == [True, True, False, False, False]
        assert late in _rows(engine)[2].last_error
        with Connection(rabbit_url) as conn:
            declare_unit_queue(conn, late)
        assert relay.run_once() == 3
    assert relay.backlog() == (0, 0.0)
    assert {r.message_id for r in _rows(engine)} == {e.id for e in envs}
    engine.dispose()


def _counting_rounds(relay: OutboxRelay) -> list[int]:
    """Replaces relay.run_once by a wrapper that appends each round's result to the list it returns."""
    rounds: list[int] = []
    original = relay.run_once

    def counted() -> int:
        published = original()
        rounds.append(published)
        return published

    relay.run_once = counted  # type: ignore[method-assign]
    return rounds


def test_a_woken_relay_publishes_committed_rows_at_once_instead_of_at_its_next_poll(engine):
    publisher = FakeBatchPublisher()
    # Polls 60 s apart: only the wake-up can explain a second round within the test's time.
    relay = OutboxRelay(engine, OUTBOX, publisher, idle_sleep=60.0, busy_sleep=60.0, wakeable=True)
    rounds = _counting_rounds(relay)
    stop = threading.Event()
    thread = threading.Thread(target=relay.run, args=(stop,))
    thread.start()
    try:
        assert wait_until(lambda: len(rounds) == 1)  # the first, empty poll; now a 60 s pause
        envs = _add(engine, 3)
        assert not relay.woken
        relay.wake()
        assert wait_until(lambda: len(rounds) == 2)  # the round has returned: its marks are committed
        assert [m.message_id for m in publisher.batches[-1]] == [e.id for e in envs]
        assert rounds == [0, 3]
        assert all(row.published_at is not None for row in _rows(engine))
    finally:
        stop.set()
        thread.join(5)
    # The stop is seen within a moment although the pause was a minute.
    assert not thread.is_alive()


def test_a_wakeable_relay_polls_on_the_idle_schedule_whatever_its_rounds_find(engine):
    publisher = FakeBatchPublisher()
    relay = OutboxRelay(
        engine, OUTBOX, publisher, batch_size=2, idle_sleep=0.2, busy_sleep=0.01, wakeable=True
    )
    stop = threading.Event()
    pauses: list[float] = []

    def recording_pause(_stop: threading.Event, seconds: float) -> None:
        pauses.append(seconds)
        if len(pauses) == 1:
            _add(engine, 1)  # this process's writer commits and announces it
            relay.wake()
        elif len(pauses) == 3:
            _add(engine, 3)  # another process's writer: nobody wakes this relay; its poll finds them
        elif len(pauses) == 5:
            stop.set()

    relay._pause = recording_pause  # type: ignore[method-assign]
    relay.run(stop)
    # Empty poll; the woken round; empty; the poll finding 3 (a full batch of 2: no pause, then 1).
    assert pauses == [0.2] * 5
    assert [len(b) for b in publisher.batches] == [1, 2, 1]


def test_a_relay_that_is_not_wakeable_keeps_polling_as_before(engine):
    publisher = FakeBatchPublisher()
    relay = OutboxRelay(engine, OUTBOX, publisher, idle_sleep=0.2, busy_sleep=0.01)
    stop = RecordingStop(pauses=3)
    _add(engine, 1)
    relay.wake()  # announced, but this relay polls on its schedule alone
    relay.run(stop)
    assert stop.pauses == [0.01, 0.02, 0.04]
