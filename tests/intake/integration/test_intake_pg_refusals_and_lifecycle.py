"""On PostgreSQL and the S3 server: a refused packet's 02 (no directive) recorded once under concurrent
senders and delivered by webhook, a revocation's 15 and 16, sealed webhook secrets, the units' StaffInfo
and the DocumentId of an issuer without an agency identifier."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from closed_loop_testing import Receiver
from edxml_packets import official_packet
from intake.adapters.secret_box import SEALED_PREFIX
from intake.adapters.status_store import StatusStore
from intake.adapters.webhook_http import TargetPolicy
from intake.domain.edxml import read_status
from intake.domain.webhooks import RetryPolicy
from intake.status import apply_task_event
from intake.webhooks import WebhookDeliverer
from intake_broker import s3_environ
from intake_testing import IntakeApp, build_intake_app, intake_environ
from shared.envelope import Envelope

pytestmark = pytest.mark.integration

SENDER = "000.00.00.G23"


def refused_packet() -> bytes:
    return official_packet().replace(b"<ContentId>cid:209</ContentId>", b"<ContentId>cid:999</ContentId>")


def post(app: IntakeApp, body: bytes) -> Any:
    return app.client.post(
        "/v1/edxml", data=body, content_type="application/xml", headers=app.auth("submitter")
    )


def test_a_refused_packet_is_answered_once_even_when_sent_concurrently(pg_intake: IntakeApp) -> None:
    answers: list[int] = []
    errors: list[BaseException] = []

    def send() -> None:
        try:
            # Each thread its own client: Flask's test client is not shared between threads.
            client = pg_intake.app.test_client()
            response = client.post(
                "/v1/edxml",
                data=refused_packet(),
                content_type="application/xml",
                headers=pg_intake.auth("submitter"),
            )
            answers.append(response.status_code)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=send) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == [] and answers == [422] * 6
    (update,) = StatusStore(pg_intake.deps.engine).page(after=0, limit=10)
    assert update.directive_id is None and update.status_code == "02"
    assert update.sender_code == SENDER
    assert update.response_for.document_id == "000.00.00.G23,2021/04/08,1393/CVT-CL"
    packet = read_status(update.packet(pg_intake.deps.department.organ).encode("utf-8"))
    assert packet.description.startswith("Từ chối tiếp nhận văn bản: tệp đính kèm thiếu hoặc không hợp lệ")


def test_revocations_are_answered_15_and_16_on_postgresql(pg_intake: IntakeApp) -> None:
    first = post(pg_intake, official_packet())
    assert first.status_code == 201, first.get_json()
    revoked = post(pg_intake, official_packet(doc_type=1))
    assert revoked.status_code == 200, revoked.get_json()
    assert post(pg_intake, official_packet(doc_type=1)).status_code == 200
    directive_id = first.get_json()["id"]
    updates = StatusStore(pg_intake.deps.engine).page(after=0, limit=10, directive_id=directive_id)
    assert [(u.status_code, u.description) for u in updates] == [
        ("01", "Văn bản đã đến, văn thư chưa xử lý"),
        ("03", "Đã tiếp nhận, vào sổ văn bản đến số 1"),
        ("15", "Đồng ý lấy lại văn bản"),
    ]
    # A refused directive cannot be revoked: 16, once, however often it is asked.
    other = pg_intake.post_json(
        {
            "issuer": {"name": "UBND tỉnh Bình Phước", "code": "000.00.00.H10"},
            "number": "15/QĐ-UBND",
            "document_type": "Quyết định",
            "issued_date": "2026-01-05",
            "subject": "Quyết định giao nhiệm vụ",
        }
    )
    assert other.status_code == 201, other.get_json()
    other_id = other.get_json()["id"]
    clerk = pg_intake.auth("clerk")
    assert (
        pg_intake.client.post(
            f"/v1/directives/{other_id}:reject", json={"reason": "Sai"}, headers=clerk
        ).status_code
        == 200
    )
    for _ in range(2):
        response = pg_intake.client.post(
            f"/v1/directives/{other_id}:revoke", json={"reason": "x"}, headers=clerk
        )
        assert response.status_code == 409
    codes = [
        u.status_code
        for u in StatusStore(pg_intake.deps.engine).page(after=0, limit=20, directive_id=other_id)
    ]
    assert codes == ["01", "03", "02", "16"]


def test_a_refusal_is_delivered_by_webhook_with_a_sealed_secret(pg_intake: IntakeApp) -> None:
    receiver = Receiver().start()
    try:
        created = pg_intake.client.post(
            "/v1/subscriptions",
            json={"url": receiver.url, "senders": [SENDER]},
            headers=pg_intake.auth("admin"),
        )
        assert created.status_code == 201
        subscription = created.get_json()
        receiver.use_secret(subscription["secret"])
        with pg_intake.deps.engine.connect() as conn:
            stored = conn.execute(
                sa.text("SELECT secret FROM webhook_subscriptions WHERE id = :id"), {"id": subscription["id"]}
            ).scalar_one()
        assert stored.startswith(SEALED_PREFIX) and subscription["secret"] not in stored
        assert post(pg_intake, refused_packet()).status_code == 422
        assert post(pg_intake, official_packet()).status_code == 201
        sender = WebhookDeliverer(
            pg_intake.deps.engine,
            sender=pg_intake.deps.department.organ,
            policy=TargetPolicy(production=False, timeout=5.0),
            retry=RetryPolicy(timedelta(seconds=5), timedelta(minutes=10), timedelta(hours=24)),
            secrets=pg_intake.deps.secret_box,
            clock=lambda: datetime.now(UTC),
        )
        while sender.round():
            pass
        assert receiver.statuses()[0] == (None, "02")
        assert [c for _, c in receiver.statuses()] == ["02", "01", "03"]
        assert receiver.received.refused == 0 and receiver.received.duplicates == 0
    finally:
        receiver.stop()


def test_staff_info_and_document_id_without_an_issuer_code_on_postgresql(
    tmp_path: Path, pg_url: str, s3_endpoint: str
) -> None:
    units = tmp_path / "status-units.yaml"
    units.write_text(
        'units:\n  - {code: SYT, name: "Sở Y tế", mobile: "0271 3870 001", email: "vanphong@syt.gov.vn"}\n',
        encoding="utf-8",
    )
    app = build_intake_app(
        intake_environ(
            tmp_path,
            DOCROUTE_INTAKE_DATABASE_URL=pg_url,
            DOCROUTE_INTAKE_ORGAN_ID="000.00.12.H10",
            DOCROUTE_STATUS_UNITS_FILE=str(units),
            **s3_environ(s3_endpoint),
        )
    )
    try:
        created = app.post_json(
            {
                "issuer": {"name": "Ban Chỉ đạo tỉnh"},
                "number": "120/KH-BCĐ",
                "document_type": "Kế hoạch",
                "issued_date": "2026-01-05",
                "subject": "Kế hoạch triển khai",
            }
        )
        assert created.status_code == 201, created.get_json()
        directive_id = created.get_json()["id"]
        envelope = Envelope.new(
            "routing.task_status_changed",
            {
                "task_id": "t-1",
                "directive_id": directive_id,
                "unit": "SYT",
                "role": "chu_tri",
                "status": "completed",
                "actor": "syt-vt",
                "changed_at": "2026-03-02T05:00:00+00:00",
            },
            producer="routing",
        )
        assert apply_task_event(
            envelope, engine=app.deps.engine, consumer="q", department=app.deps.department
        ) == [
            "04",
            "05",
            "06",
        ]
        updates = StatusStore(app.deps.engine).page(after=0, limit=10, directive_id=directive_id)
        assert {u.response_for.document_id for u in updates} == {"000.00.12.H10,2026/01/05,120/KH-BCĐ"}
        assert all(u.response_for.organ_id is None for u in updates)
        staff = {u.status_code: u.staff for u in updates}
        assert staff["03"] is not None and staff["03"].department == "Văn thư"
        assert staff["06"] is not None
        assert (staff["06"].department, staff["06"].staff, staff["06"].mobile) == (
            "Sở Y tế",
            "syt-vt",
            "0271 3870 001",
        )
    finally:
        app.deps.engine.dispose()
