"""The status stream on PostgreSQL: written with the registration's one statement, gap-free cursors under
concurrent writers, and a reader paging while they write never skips a status."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime

import pytest
import sqlalchemy as sa
from intake.adapters.status_store import StatusStore
from intake.domain.models import Issuer, new_metadata
from intake.handlers import Submission, register_directive
from intake.status import apply_task_event, reject_directive
from intake_testing import IntakeApp
from shared.envelope import Envelope

pytestmark = pytest.mark.integration


def submission(index: int) -> Submission:
    metadata = new_metadata(
        issuer_name="UBND tỉnh Bình Phước",
        issuer_code="000.00.00.H10",
        number=f"{index:02d}/QĐ-UBND",
        issued_date=date(2026, 1, 5),
        subject=f"Quyết định số {index} về việc giao nhiệm vụ",
    )
    assert metadata.issuer == Issuer("UBND tỉnh Bình Phước", "000.00.00.H10")
    return Submission(metadata=metadata, raw_metadata="{}", uploads=(), submitted_by="eoffice")


def register(app: IntakeApp, index: int) -> str:
    deps = app.deps
    return register_directive(
        submission(index),
        repository=deps.repository,
        staging=deps.staging,
        organisation="STTTT",
        max_upload_bytes=1024,
        clock=lambda: datetime(2026, 6, 1, 3, 0, tzinfo=UTC),
        department=deps.department,
    ).directive.id


def test_the_registration_statement_writes_01_and_03_with_its_number(pg_intake: IntakeApp) -> None:
    first = register(pg_intake, 1)
    second = register(pg_intake, 2)
    updates = StatusStore(pg_intake.deps.engine).page(after=0, limit=10)
    assert [(u.directive_id, u.status_code, u.cursor) for u in updates] == [
        (first, "01", 1),
        (first, "03", 2),
        (second, "01", 3),
        (second, "03", 4),
    ]
    assert updates[3].description == "Đã tiếp nhận, vào sổ văn bản đến số 2"
    assert updates[0].response_for.document_id == "000.00.00.H10,2026/01/05,01/QĐ-UBND"
    assert updates[0].staff is not None and updates[0].staff.department == "Văn thư"


def test_cursors_stay_gap_free_and_in_order_for_a_reader_under_concurrent_writers(
    pg_intake: IntakeApp,
) -> None:
    deps = pg_intake.deps
    store = StatusStore(deps.engine)
    errors: list[BaseException] = []
    done = threading.Event()
    seen: list[int] = []

    def registrations(thread: int) -> None:
        for i in range(8):
            try:
                directive = register(pg_intake, thread * 100 + i + 1)
                if i % 2:
                    envelope = Envelope.new(
                        "routing.task_status_changed",
                        {
                            "task_id": f"t-{directive}",
                            "directive_id": directive,
                            "unit": "SYT",
                            "role": "chu_tri",
                            "status": "completed",
                            "changed_at": "2026-06-01T05:00:00+00:00",
                        },
                        producer="routing",
                    )
                    apply_task_event(envelope, engine=deps.engine, consumer="q", department=deps.department)
                elif i % 4 == 0:
                    reject_directive(
                        directive,
                        "Sai thẩm quyền",
                        engine=deps.engine,
                        actor="clerk",
                        department=deps.department,
                    )
            except BaseException as exc:  # noqa: BLE001 - collected and asserted empty below
                errors.append(exc)

    def reader() -> None:
        after = 0
        while True:
            finished = done.is_set()
            page = store.page(after=after, limit=7)
            seen.extend(u.cursor for u in page)
            if page:
                after = page[-1].cursor
            elif finished:
                return

    threads = [threading.Thread(target=registrations, args=(t,)) for t in range(4)]
    watcher = threading.Thread(target=reader)
    watcher.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    done.set()
    watcher.join(timeout=60)
    assert errors == []
    # 32 directives: 01+03 each, 16 of them 04+05+06, 8 refused (02).
    total = 32 * 2 + 16 * 3 + 8
    assert seen == list(range(1, total + 1))
    with deps.engine.connect() as conn:
        per_directive = conn.execute(
            sa.text(
                "SELECT directive_id, string_agg(status_code, ',' ORDER BY cursor) FROM status_updates "
                "GROUP BY directive_id"
            )
        ).all()
    assert {codes for _, codes in per_directive} == {"01,03", "01,03,04,05,06", "01,03,02"}
