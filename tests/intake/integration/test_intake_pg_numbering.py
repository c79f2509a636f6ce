"""Arrival numbers on PostgreSQL: gapless and unique under concurrent submissions, restarting each year."""

from __future__ import annotations

import json
import threading
from datetime import UTC, date, datetime

import pytest
import sqlalchemy as sa
from intake.domain.errors import DuplicateDirective
from intake.domain.models import Signer, new_metadata
from intake.handlers import Submission, register_directive
from intake_testing import IntakeApp

pytestmark = pytest.mark.integration


def submission(index: int) -> Submission:
    metadata = new_metadata(
        issuer_name="UBND tỉnh Bình Phước",
        number=f"{index:02d}/QĐ-UBND",
        issued_date=date(2026, 1, 5),
        subject=f"Quyết định số {index} về việc giao nhiệm vụ",
    )
    return Submission(metadata=metadata, raw_metadata="{}", uploads=(), submitted_by="load-test")


def test_eighty_concurrent_submissions_get_numbers_one_to_eighty(pg_intake: IntakeApp) -> None:
    deps = pg_intake.deps
    numbers: list[int] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    start = threading.Barrier(8)

    def submit(thread: int) -> None:
        start.wait()
        for i in range(10):
            try:
                registration = register_directive(
                    submission(thread * 10 + i + 1),
                    repository=deps.repository,
                    staging=deps.staging,
                    organisation="STTTT",
                    max_upload_bytes=1024,
                    clock=lambda: datetime(2026, 6, 1, 3, 0, tzinfo=UTC),
                )
            except Exception as exc:  # noqa: BLE001 - collected and asserted empty below
                errors.append(exc)
            else:
                with lock:
                    numbers.append(registration.directive.arrival_number)

    threads = [threading.Thread(target=submit, args=(t,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert sorted(numbers) == list(range(1, 81))
    with deps.engine.connect() as conn:
        stored = conn.execute(
            sa.text("SELECT arrival_number FROM directives ORDER BY arrival_number")
        ).scalars()
        assert list(stored) == list(range(1, 81))
        assert conn.execute(sa.text("SELECT count(*) FROM outbox")).scalar_one() == 80
        counter = conn.execute(
            sa.text("SELECT last_number FROM arrival_counters WHERE year = 2026")
        ).scalar_one()
        assert counter == 80


def test_numbers_restart_across_the_year_boundary_on_postgresql(pg_intake: IntakeApp) -> None:
    deps = pg_intake.deps
    got = []
    for index, instant in enumerate(
        [
            datetime(2026, 12, 31, 16, 58, tzinfo=UTC),
            datetime(2026, 12, 31, 16, 59, 59, tzinfo=UTC),
            datetime(2026, 12, 31, 17, 0, tzinfo=UTC),
            datetime(2027, 1, 1, 9, 0, tzinfo=UTC),
        ],
        start=1,
    ):
        registration = register_directive(
            submission(index),
            repository=deps.repository,
            staging=deps.staging,
            organisation="STTTT",
            max_upload_bytes=1024,
            clock=lambda instant=instant: instant,
        )
        got.append((registration.directive.arrival_date.isoformat(), registration.directive.arrival_number))
    assert got == [("2026-12-31", 1), ("2026-12-31", 2), ("2027-01-01", 1), ("2027-01-01", 2)]


def test_a_failed_transaction_leaves_no_gap(pg_intake: IntakeApp) -> None:
    deps = pg_intake.deps
    clock = lambda: datetime(2026, 6, 1, 3, 0, tzinfo=UTC)  # noqa: E731
    kwargs = {
        "repository": deps.repository,
        "staging": deps.staging,
        "organisation": "STTTT",
        "max_upload_bytes": 1,
    }
    register_directive(submission(1), clock=clock, **kwargs)
    # The same document again loses on the unique index inside the numbering transaction: its number must
    # be rolled back with it.
    with pytest.raises(DuplicateDirective):
        register_directive(submission(1), clock=clock, **kwargs)
    assert register_directive(submission(2), clock=clock, **kwargs).directive.arrival_number == 2


def test_migrations_match_the_table_definitions(pg_intake: IntakeApp) -> None:
    from intake.adapters.tables import metadata
    from migration_check import migration_diff

    with pg_intake.deps.engine.connect() as conn:
        assert migration_diff(conn, metadata) == []


def test_concurrent_repeats_of_one_idempotency_key_register_once(pg_intake: IntakeApp) -> None:
    deps = pg_intake.deps
    base = submission(1)
    keyed = Submission(
        metadata=base.metadata,
        raw_metadata='{"n": 1}',
        uploads=(),
        submitted_by="eoffice",
        idempotency_key="k-race",
    )
    results: list[tuple[str, bool]] = []
    start = threading.Barrier(6)

    def submit() -> None:
        start.wait()
        registration = register_directive(
            keyed,
            repository=deps.repository,
            staging=deps.staging,
            organisation="STTTT",
            max_upload_bytes=1024,
            clock=lambda: datetime(2026, 6, 1, 3, 0, tzinfo=UTC),
        )
        results.append((registration.directive.id, registration.created))

    threads = [threading.Thread(target=submit) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(results) == 6
    assert len({directive_id for directive_id, _ in results}) == 1
    assert sum(created for _, created in results) == 1
    assert pg_intake.count_rows("directives") == pg_intake.count_rows("outbox") == 1
    # The losers' numbers were rolled back with their transactions: the next one is 2, not 7.
    nxt = register_directive(
        submission(2),
        repository=deps.repository,
        staging=deps.staging,
        organisation="STTTT",
        max_upload_bytes=1024,
        clock=lambda: datetime(2026, 6, 1, 3, 0, tzinfo=UTC),
    )
    assert nxt.directive.arrival_number == 2


def test_every_field_survives_the_numbered_insert_on_postgresql(pg_intake: IntakeApp) -> None:
    # On PostgreSQL the number and the directive row are written by one statement (a CTE); every column,
    # JSON and dates included, must come back as written and the event must carry the same number.
    deps = pg_intake.deps
    metadata = new_metadata(
        issuer_name="Sở Thông tin và Truyền thông tỉnh Đắk Lắk",
        issuer_code="000.00.12.H17",
        number="1393/STTTT-CĐS",
        document_type="CV",
        issued_date=date(2026, 3, 2),
        subject="Về việc triển khai chữ ký số chuyên dùng",
        place="Buôn Ma Thuột",
        content="Nội dung đầy đủ của công văn",
        signer=Signer(competence="KT. GIÁM ĐỐC", position="PHÓ GIÁM ĐỐC", full_name="Nguyễn Thị Hồng Nhung"),
        urgency="khan",
        due_date=date(2026, 3, 20),
        page_amount=3,
        to_places=["Như trên", "Lưu: VT, CĐS"],
        external_id="ext-42",
    )
    registered = register_directive(
        Submission(
            metadata=metadata,
            raw_metadata='{"subject": "Về việc triển khai chữ ký số chuyên dùng"}',
            uploads=(),
            submitted_by="e-office",
            idempotency_key="key-1",
        ),
        repository=deps.repository,
        staging=deps.staging,
        organisation="STTTT",
        max_upload_bytes=1024,
        clock=lambda: datetime(2026, 3, 3, 1, 30, tzinfo=UTC),
    ).directive
    assert registered.arrival_number == 1
    assert deps.repository.get(registered.id) == registered
    with deps.engine.connect() as conn:
        row = conn.execute(sa.text("SELECT arrival_year, request_hash FROM directives")).one()
        body = conn.execute(sa.text("SELECT body FROM outbox")).scalar_one()
    assert row.arrival_year == 2026
    assert len(row.request_hash) == 64
    payload = json.loads(bytes(body).decode("utf-8"))["payload"]
    assert payload["arrival_number"] == 1
    assert payload["metadata"]["signer"]["full_name"] == "Nguyễn Thị Hồng Nhung"
    assert payload["metadata"]["to_places"] == ["Như trên", "Lưu: VT, CĐS"]


def test_one_statement_writes_the_attachments_and_the_event_with_the_number_it_took(
    pg_intake: IntakeApp,
) -> None:
    # On PostgreSQL the registration is one statement run in autocommit; the event's body is sent with
    # number 1 and the statement writes the number it takes into it. The stored event must be exactly what
    # Python would have queued for the numbered directive, Vietnamese text included.
    from intake.handlers import Upload
    from intake.messages import DIRECTIVE_REGISTERED_TYPE, directive_registered_payload
    from shared.envelope import Envelope

    deps = pg_intake.deps
    clock = lambda: datetime(2026, 6, 1, 3, 0, tzinfo=UTC)  # noqa: E731
    kwargs = {"repository": deps.repository, "staging": deps.staging, "organisation": "STTTT"}
    for index in (1, 2):
        register_directive(submission(index), clock=clock, max_upload_bytes=1024, **kwargs)
    uploads = (
        Upload("files[0]", "Công văn số 12.pdf", "application/pdf", b"%PDF-1.7 first\n%%EOF"),
        Upload("files[1]", "Phụ lục kèm theo.pdf", "application/pdf", b"%PDF-1.7 second\n%%EOF"),
    )
    third = submission(3)
    directive = register_directive(
        Submission(metadata=third.metadata, raw_metadata="{}", uploads=uploads, submitted_by="e-office"),
        clock=clock,
        max_upload_bytes=1024,
        **kwargs,
    ).directive
    assert directive.arrival_number == 3
    assert deps.repository.get(directive.id) == directive
    assert [a.filename for a in deps.repository.get(directive.id).attachments] == [
        "Công văn số 12.pdf",
        "Phụ lục kèm theo.pdf",
    ]
    with deps.engine.connect() as conn:
        row = conn.execute(
            sa.text("SELECT message_id, body, headers FROM outbox ORDER BY id DESC LIMIT 1")
        ).one()
        in_transaction = conn.execute(
            sa.text(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE state LIKE 'idle in%' AND datname = current_database()"
            )
        )
        assert in_transaction.scalar_one() == 0  # the autocommit statement left no transaction open
    sent = Envelope.from_dict(json.loads(bytes(row.body).decode("utf-8")))
    assert sent.id == row.message_id and sent.type == DIRECTIVE_REGISTERED_TYPE
    assert sent.payload == directive_registered_payload(directive)
    assert sent.payload["arrival_number"] == 3
    assert "Phụ lục kèm theo.pdf" in bytes(row.body).decode("utf-8")  # UTF-8 as written, not escaped
    assert row.headers["correlation_id"] == sent.correlation_id
