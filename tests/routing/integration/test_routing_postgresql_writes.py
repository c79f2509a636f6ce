"""Routing a directive on PostgreSQL (one statement) writes what the portable path writes on SQLite."""

import json
import time
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from routing import dispatch
from routing.adapters import tables as t
from routing_testkit import build_routing_app, registered_event

pytestmark = pytest.mark.integration

MOMENTS = {"id", "task_id", "created_at", "updated_at", "at", "message_id", "occurred_at"}


def _scrub(value: Any) -> Any:
    """The row or document without what differs from one run to the next (ids, clocks)."""
    if isinstance(value, dict):
        return {k: _scrub(v) for k, v in value.items() if k not in MOMENTS and k != "correlation_id"}
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    if isinstance(value, datetime):  # SQLite hands back naive UTC
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    return value


def _written(app: Any, directive_id: str) -> dict[str, Any]:
    with app.deps.engine.connect() as conn:
        directive = conn.execute(sa.select(t.directives).where(t.directives.c.id == directive_id)).one()
        tasks = conn.execute(sa.select(t.tasks).order_by(t.tasks.c.unit)).all()
        units = {row.id: row.unit for row in tasks}
        history = conn.execute(sa.select(t.task_history)).all()
        outbox = conn.execute(sa.select(t.outbox).order_by(t.outbox.c.id)).all()
    return {
        "directive": _scrub(directive._asdict()),
        "tasks": [_scrub(row._asdict()) for row in tasks],
        "history": sorted(
            ((units[row.task_id], _scrub(row._asdict())) for row in history), key=lambda pair: pair[0]
        ),
        "outbox": [
            (row.exchange, row.routing_key, _scrub(row.headers), _scrub(json.loads(bytes(row.body))))
            for row in outbox
        ],
    }


@pytest.mark.parametrize("sample", ["1393-CVT-CL.json", "171-CV-BTGTU.json"])
def test_the_one_statement_on_postgresql_writes_what_sqlite_writes(tmp_path, pg_url, sample):
    written = []
    for name, url in (("sqlite", None), ("postgresql", pg_url)):
        app = build_routing_app(tmp_path / name, url)
        app.load_samples()
        event = registered_event(sample, directive_id="d-cùng-một")
        ids = dispatch.route_directive(event, engine=app.deps.engine, calendar=app.deps.calendar)
        assert len(ids) > 10
        written.append(_written(app, "d-cùng-một"))
        app.deps.engine.dispose()
    on_sqlite, on_postgresql = written
    assert on_postgresql["directive"]["metadata"]["subject"]  # Vietnamese text made it through
    assert on_postgresql == on_sqlite
    # Publish order: one offer per task, then the archive's tasks_assigned event last.
    types = [body["type"] for _, _, _, body in on_postgresql["outbox"]]
    assert types == ["routing.task_offered"] * len(ids) + ["routing.tasks_assigned"]


def test_a_directive_no_rule_matches_is_stored_without_tasks_on_postgresql(pg_url, tmp_path):
    app = build_routing_app(tmp_path, pg_url)  # no rules loaded: nothing matches
    app.load_samples()
    with app.deps.engine.begin() as conn:
        conn.execute(sa.delete(t.rule_versions))
    event = registered_event("120-KH-BCD.json")
    assert dispatch.route_directive(event, engine=app.deps.engine, calendar=app.deps.calendar) == []
    with app.deps.engine.connect() as conn:
        status = conn.execute(sa.select(t.directives.c.status)).scalar_one()
        assert conn.execute(sa.select(sa.func.count()).select_from(t.outbox)).scalar_one() == 0
    assert status == "needs_assignment"
    app.deps.engine.dispose()


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_admission_claims_once_sees_a_routed_directive_and_reads_the_revision(tmp_path, pg_url, database):
    from routing.adapters.reference import reference_revision
    from routing.adapters.repository import admit_directive

    app = build_routing_app(tmp_path, pg_url if database == "postgresql" else None)
    app.load_samples()
    engine = app.deps.engine
    event = registered_event("171-CV-BTGTU.json")
    directive_id = event.payload["directive_id"]
    with engine.begin() as conn:
        first = admit_directive(conn, "m-0", "routing", directive_id)
        revision = reference_revision(conn)
    assert first.claimed and not first.known
    assert first.revision == (revision if database == "postgresql" else None)
    with engine.begin() as conn:  # the same message again: a redelivery
        assert not admit_directive(conn, "m-0", "routing", directive_id).claimed
    with engine.begin() as conn:  # a claim that rolled back with its transaction is made again
        assert admit_directive(conn, "m-rolled-back", "routing", directive_id).claimed
        conn.rollback()
    with engine.begin() as conn:
        assert admit_directive(conn, "m-rolled-back", "routing", directive_id).claimed
    dispatch.route_directive(event, engine=engine, calendar=app.deps.calendar)
    with engine.begin() as conn:  # the same directive under another message id
        again = admit_directive(conn, "m-other", "routing", directive_id)
    assert again.claimed and again.known
    # Routing it under that id creates nothing more.
    other = registered_event("171-CV-BTGTU.json", directive_id=directive_id)
    assert dispatch.route_directive(other, engine=engine, calendar=app.deps.calendar) == []
    app.deps.engine.dispose()


def test_a_concurrent_claim_of_the_same_message_waits_and_then_sees_it_taken(tmp_path, pg_url):
    import threading

    from routing.adapters.repository import admit_directive

    app = build_routing_app(tmp_path, pg_url)
    engine = app.deps.engine
    outcome: list[bool] = []
    with engine.begin() as first:
        assert admit_directive(first, "m-1", "routing", "d-1").claimed

        def second() -> None:
            with engine.begin() as conn:
                outcome.append(admit_directive(conn, "m-1", "routing", "d-1").claimed)

        thread = threading.Thread(target=second)
        thread.start()
        # Blocked on the first transaction's uncommitted claim: a backend of this database waits on a lock.
        with engine.connect() as watcher:
            waiting = sa.text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND wait_event_type = 'Lock'"
            )
            deadline = time.monotonic() + 10
            while watcher.execute(waiting).scalar_one() == 0 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert watcher.execute(waiting).scalar_one() == 1
        assert outcome == []
    thread.join(10)
    assert outcome == [False]
    engine.dispose()
