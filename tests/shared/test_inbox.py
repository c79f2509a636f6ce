"""The inbox: claim() says True once per (message id, consumer), also under concurrency and rollback."""

import threading

import pytest
import sqlalchemy as sa
from shared.db import make_engine
from shared.inbox import claim, inbox_table
from sqlalchemy.orm import Session

META = sa.MetaData()
INBOX = inbox_table(META)


@pytest.fixture
def engine(db_url: str):
    engine = make_engine(db_url)
    META.create_all(engine)
    yield engine
    engine.dispose()


def test_first_claim_wins_and_duplicates_are_refused(engine):
    with engine.begin() as conn:
        assert claim(conn, INBOX, "m-1", "archive") is True
    with engine.begin() as conn:
        assert claim(conn, INBOX, "m-1", "archive") is False
        # The transaction is still usable after a duplicate (no aborted PostgreSQL transaction).
        assert conn.execute(sa.select(sa.func.count()).select_from(INBOX)).scalar() == 1


def test_the_same_message_is_claimed_once_per_consumer(engine):
    with engine.begin() as conn:
        assert claim(conn, INBOX, "m-1", "routing") is True
        assert claim(conn, INBOX, "m-1", "archive") is True
        assert claim(conn, INBOX, "m-1", "archive") is False


def test_a_rolled_back_claim_can_be_claimed_again(engine):
    with pytest.raises(RuntimeError), engine.begin() as conn:
        assert claim(conn, INBOX, "m-2", "archive") is True
        raise RuntimeError("handler failed after claiming")
    with engine.begin() as conn:
        assert claim(conn, INBOX, "m-2", "archive") is True


def test_claim_works_inside_an_orm_session(engine):
    with Session(engine) as session, session.begin():
        assert claim(session, INBOX, "m-3", "archive") is True
        assert claim(session, INBOX, "m-3", "archive") is False


def test_concurrent_claims_of_one_id_let_exactly_one_through(engine):
    barrier = threading.Barrier(6)
    results: list[bool] = []
    lock = threading.Lock()

    def worker() -> None:
        barrier.wait()
        with engine.begin() as conn:
            won = claim(conn, INBOX, "m-race", "archive")
        with lock:
            results.append(won)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(results) == [False] * 5 + [True]
