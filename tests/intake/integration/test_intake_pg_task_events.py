"""Routing's task events on PostgreSQL, where intake applies one in three statements (claim and locks, the
tasks and codes read, one write): the same tasks and statuses as the portable path writes on SQLite, and
no change lost when events for one directive are applied at the same time."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from intake.adapters.tables import directive_tasks, inbox, status_updates
from intake.domain.models import new_metadata
from intake.handlers import Submission, register_directive
from intake.status import apply_task_event
from intake_testing import IntakeApp, build_intake_app, intake_environ
from shared.envelope import Envelope

pytestmark = pytest.mark.integration

QUEUE = "intake.routing.test"


@pytest.fixture
def pg_app(tmp_path: Path, pg_url: str) -> Iterator[IntakeApp]:
    """The intake app on a fresh PostgreSQL database and the filesystem store."""
    built = build_intake_app(intake_environ(tmp_path / "pg", DOCROUTE_INTAKE_DATABASE_URL=pg_url))
    yield built
    built.deps.engine.dispose()


def register(app: IntakeApp, index: int) -> str:
    """Registers directive `dir-<index>` (the same id on every database)."""
    ids = itertools.count()
    deps = app.deps
    metadata = new_metadata(
        issuer_name="Sở Y tế tỉnh Đồng Nai",
        issuer_code="000.00.31.H19",
        number=f"{index}/SYT-NVY",
        issued_date=date(2026, 3, 1),
        subject=f"Về việc phòng, chống dịch bệnh số {index}",
    )
    return register_directive(
        Submission(metadata=metadata, raw_metadata="{}", uploads=(), submitted_by="eoffice"),
        repository=deps.repository,
        staging=deps.staging,
        organisation="STTTT",
        max_upload_bytes=1024,
        clock=lambda: datetime(2026, 3, 2, 3, 0, tzinfo=UTC),
        new_id=lambda: f"dir-{index}" if next(ids) == 0 else f"file-{index}",
        department=deps.department,
    ).directive.id


def doc(
    task: str, directive: str, status: str, at: str, role: str = "chu_tri", unit: str = "SYT"
) -> dict[str, Any]:
    return {
        "id": task,
        "directive_id": directive,
        "unit": unit,
        "role": role,
        "status": status,
        "updated_at": at,
    }


def change(
    task: str, directive: str, status: str, at: str, role: str = "chu_tri", unit: str = "SYT"
) -> dict[str, Any]:
    return {
        "task_id": task,
        "directive_id": directive,
        "unit": unit,
        "role": role,
        "status": status,
        "actor": f"cán bộ {unit}",
        "changed_at": at,
    }


def event(number: int, kind: str, payload: dict[str, Any]) -> Envelope:
    envelope = Envelope.new(kind, payload, producer="routing")
    # The same message id on both databases (a redelivery repeats the number).
    return Envelope.from_dict({**envelope.to_dict(), "id": f"event-{number}"})


def script() -> list[Envelope]:
    """Assignments, acknowledgements across directives, redeliveries, late and same-instant changes, a
    change that overtakes its assignment, a cancelled chủ trì task and directives intake does not know."""
    d1, d2, d3 = "dir-1", "dir-2", "dir-3"
    t = "2026-03-02T0{}:00:00+00:00".format
    return [
        event(
            1,
            "routing.tasks_assigned",
            {
                "directive_id": d1,
                "tasks": [
                    doc("a", d1, "assigned", t(4)),
                    doc("b", d1, "assigned", t(4), unit="CA"),
                    doc("c", d1, "assigned", t(4), role="phoi_hop", unit="STC"),
                ],
            },
        ),
        event(1, "routing.tasks_assigned", {"directive_id": d1, "tasks": [doc("a", d1, "assigned", t(4))]}),
        # d2's task changes before intake heard of its assignment.
        event(2, "routing.task_status_changed", change("x", d2, "in_progress", t(5))),
        event(3, "routing.tasks_assigned", {"directive_id": d2, "tasks": [doc("x", d2, "assigned", t(4))]}),
        event(
            4,
            "routing.tasks_acknowledged",
            {
                "changes": [
                    change("a", d1, "received", t(5)),
                    change("a", d1, "in_progress", t(5)),  # the same instant: the later step wins
                    change("x", d2, "completed", t(6)),
                    change("z", "dir-unknown", "received", t(6)),
                ]
            },
        ),
        event(5, "routing.task_status_changed", change("a", d1, "received", t(4))),  # late, older
        event(6, "routing.task_status_changed", change("a", d1, "completed", t(7))),
        event(7, "routing.task_status_changed", change("b", d1, "cancelled", t(8), unit="CA")),
        event(
            8, "routing.task_status_changed", change("c", d1, "completed", t(8), role="phoi_hop", unit="STC")
        ),
        event(
            9,
            "routing.tasks_assigned",
            {"directive_id": "dir-unknown", "tasks": [doc("q", "x", "assigned", t(4))]},
        ),
        event(
            10,
            "routing.tasks_assigned",
            {"directive_id": d3, "tasks": [doc("p", d3, "assigned", t(4), role="phoi_hop")]},
        ),
        event(
            11, "routing.task_status_changed", change("b", d1, "in_progress", t(3), unit="CA")
        ),  # older still
    ]


def outcome(app: IntakeApp) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """The tasks, statuses (but their random ids) and inbox rows, with every time in UTC."""
    with app.deps.engine.connect() as conn:
        tasks = conn.execute(sa.select(directive_tasks).order_by(directive_tasks.c.task_id)).all()
        statuses = conn.execute(
            sa.select(*[c for c in status_updates.columns if c.name != "id"]).order_by(
                status_updates.c.cursor
            )
        ).all()
        claims = conn.execute(
            sa.select(inbox.c.message_id, inbox.c.consumer).order_by(inbox.c.message_id)
        ).all()

    def utc(value: Any) -> Any:
        if isinstance(value, datetime):
            return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC)
        return value

    return (
        [tuple(utc(v) for v in row) for row in tasks],
        [tuple(utc(v) for v in row) for row in statuses],
        [tuple(row) for row in claims],
    )


def test_task_events_write_the_same_tasks_and_statuses_as_the_portable_path(
    intake: IntakeApp, pg_app: IntakeApp
) -> None:
    assert intake.deps.engine.dialect.name == "sqlite" and pg_app.deps.engine.dialect.name == "postgresql"
    emitted: dict[str, list[list[str]]] = {}
    for app in (intake, pg_app):
        for index in (1, 2, 3):
            register(app, index)
        emitted[app.deps.engine.dialect.name] = [
            apply_task_event(e, engine=app.deps.engine, consumer=QUEUE, department=app.deps.department)
            for e in script()
        ]
    assert emitted["postgresql"] == emitted["sqlite"]
    assert emitted["postgresql"] == [
        ["04"],
        [],
        ["04", "05"],
        [],
        ["05", "06"],
        [],
        [],
        ["06"],
        [],
        [],
        [],
        [],
    ]
    pg_tasks, pg_statuses, pg_inbox = outcome(pg_app)
    assert outcome(intake) == (pg_tasks, pg_statuses, pg_inbox)
    assert [row[0] for row in pg_tasks] == ["a", "b", "c", "p", "x"]  # nothing for the unknown directive
    by_task = {row[0]: row for row in pg_tasks}
    assert by_task["a"][4:6] == ("completed", True)
    # The older in_progress did not undo the cancellation, but `started` is never lost.
    assert by_task["b"][4:7] == ("cancelled", True, datetime(2026, 3, 2, 8, tzinfo=UTC))
    assert by_task["x"][4:6] == ("completed", True)
    progress = [row for row in pg_statuses if row[2] in ("04", "05", "06")]
    assert [(row[1], row[2]) for row in progress] == [
        ("dir-1", "04"),
        ("dir-2", "04"),
        ("dir-2", "05"),
        ("dir-1", "05"),
        ("dir-2", "06"),
        ("dir-1", "06"),
    ]
    # 06 for dir-1 came with b's cancellation (a was done): the last status, its unit's text in Vietnamese.
    last = pg_statuses[-1]
    assert (last[1], last[2]) == ("dir-1", "06")
    assert "SYT" in last[3] and last[5]["department"] == "SYT" and last[5]["staff"] == "cán bộ CA"
    assert [row[0] for row in pg_statuses] == list(range(1, len(pg_statuses) + 1))


def test_a_task_event_is_three_statements_on_postgresql(pg_app: IntakeApp) -> None:
    directive = register(pg_app, 1)
    engine = pg_app.deps.engine
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    sa.event.listen(engine, "before_cursor_execute", count)
    try:
        tasks = [doc(f"t{i}", directive, "assigned", "2026-03-02T04:00:00+00:00") for i in range(21)]
        assigned = event(1, "routing.tasks_assigned", {"directive_id": directive, "tasks": tasks})
        codes = apply_task_event(assigned, engine=engine, consumer=QUEUE, department=pg_app.deps.department)
        assert codes == ["04"] and len(statements) == 3
        statements.clear()
        again = apply_task_event(assigned, engine=engine, consumer=QUEUE, department=pg_app.deps.department)
        assert again == [] and len(statements) == 1  # a duplicate stops at the claim
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)
    assert pg_app.count_rows("directive_tasks") == 21


def test_events_for_one_directive_applied_at_once_lose_no_change(pg_app: IntakeApp) -> None:
    # Each of two chủ trì tasks is completed by its own event, applied by two threads at the same moment.
    # Each must see what the other committed (the reads follow the lock), so 06 is sent once, for every
    # directive, and the cursors stay gap-free.
    engine, department = pg_app.deps.engine, pg_app.deps.department
    directives = [register(pg_app, index) for index in range(1, 13)]
    numbers = itertools.count(1)
    for directive in directives:
        tasks = [doc(f"{directive}-{n}", directive, "assigned", "2026-03-02T04:00:00+00:00") for n in (1, 2)]
        assigned = event(next(numbers), "routing.tasks_assigned", {"directive_id": directive, "tasks": tasks})
        assert apply_task_event(assigned, engine=engine, consumer=QUEUE, department=department) == ["04"]
    errors: list[BaseException] = []
    emitted: list[str] = []
    start = threading.Barrier(2)

    def complete(n: int, events: list[Envelope]) -> None:
        try:
            for envelope in events:
                start.wait(timeout=30)
                emitted.extend(
                    apply_task_event(envelope, engine=engine, consumer=QUEUE, department=department)
                )
        except BaseException as exc:  # noqa: BLE001 - collected and asserted empty below
            errors.append(exc)

    work = {
        n: [
            event(
                1000 * n + i,
                "routing.task_status_changed",
                change(f"{directive}-{n}", directive, "completed", f"2026-03-02T05:00:0{n}+00:00"),
            )
            for i, directive in enumerate(directives)
        ]
        for n in (1, 2)
    }
    threads = [threading.Thread(target=complete, args=(n, events)) for n, events in work.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    assert sorted(emitted) == sorted(["05", "06"] * len(directives))
    with engine.connect() as conn:
        per_directive = dict(
            conn.execute(
                sa.text(
                    "SELECT directive_id, string_agg(status_code, ',' ORDER BY cursor) FROM status_updates "
                    "GROUP BY directive_id"
                )
            ).all()
        )
        cursors = conn.execute(sa.text("SELECT cursor FROM status_updates ORDER BY cursor")).scalars().all()
    assert per_directive == dict.fromkeys(directives, "01,03,04,05,06")
    assert cursors == list(range(1, len(cursors) + 1))
