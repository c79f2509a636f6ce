"""The closed loop beyond a directive's progress (SQLite): 02 for a refused packet that names its sender
(no directive), 15 / 16 for a revocation (and the generic call update and replacement use), the units'
StaffInfo, and the webhook secrets sealed at rest."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from closed_loop_testing import Receiver
from edxml_packets import official_packet
from intake.adapters.secret_box import SEALED_PREFIX, SecretBox, SecretUnreadable, reseal_all
from intake.adapters.tables import webhook_subscriptions
from intake.adapters.webhook_http import TargetPolicy
from intake.domain.edxml import read_status
from intake.domain.status import LifecycleKind
from intake.domain.webhooks import RetryPolicy
from intake.status import apply_task_event, record_lifecycle_status
from intake.webhooks import WebhookDeliverer
from intake_testing import IntakeApp, build_intake_app, intake_environ
from shared.envelope import Envelope

XML = "application/xml"
SENDER = "000.00.00.G23"
DOCUMENT_ID = "000.00.00.G23,2021/04/08,1393/CVT-CL"


def post_packet(intake: IntakeApp, body: bytes, *, sub: str | None = None) -> Any:
    return intake.client.post(
        "/v1/edxml", data=body, content_type=XML, headers=intake.auth("submitter", sub=sub)
    )


def feed(intake: IntakeApp, role: str = "clerk", sub: str | None = None) -> list[dict[str, Any]]:
    response = intake.client.get("/v1/status-updates", headers=intake.auth(role, sub=sub))
    assert response.status_code == 200, response.get_json()
    items: list[dict[str, Any]] = response.get_json()["items"]
    return items


def missing_attachment() -> bytes:
    """The manifest names cid:209, but the attachment carried is cid:999."""
    body = official_packet()
    return body.replace(b"<ContentId>cid:209</ContentId>", b"<ContentId>cid:999</ContentId>")


def without_sender_id(body: bytes) -> bytes:
    return body.replace(f"<edXML:OrganId>{SENDER}</edXML:OrganId>".encode(), b"", 1)


# -- 02 for a refused packet ------------------------------------------------------------------------------


def test_a_refused_packet_that_names_its_sender_yields_02_with_the_reason_and_nothing_else(
    intake: IntakeApp,
) -> None:
    response = post_packet(intake, missing_attachment(), sub="eoffice-g23")
    assert response.status_code == 422
    assert "edXMLManifest" in response.get_json()["errors"]
    (item,) = feed(intake)
    assert item["directive_id"] is None
    assert item["status_code"] == "02"
    assert item["sender"] == SENDER
    assert item["document_id"] == DOCUMENT_ID
    assert item["description"].startswith("Từ chối tiếp nhận văn bản: tệp đính kèm thiếu hoặc không hợp lệ (")
    assert "cid:209" not in item["description"] and "209" in item["description"]
    packet = read_status(item["packet"].encode("utf-8"))
    assert packet.status_code == "02"
    assert packet.description == item["description"]
    assert packet.response_for.document_id == DOCUMENT_ID
    assert packet.response_for.organ_id == SENDER
    assert packet.response_for.code == "1393/CVT-CL"
    assert packet.staff is not None and packet.staff.department == "Văn thư"
    # Nothing else was stored: no directive.
    listed = intake.client.get("/v1/directives", headers=intake.auth("clerk")).get_json()
    assert listed["total"] == 0
    # The submitter that sent it sees it; another does not.
    assert [i["id"] for i in feed(intake, "submitter", sub="eoffice-g23")] == [item["id"]]
    assert feed(intake, "submitter", sub="someone-else") == []
    # The same packet refused again for the same reason is not a new status.
    assert post_packet(intake, missing_attachment(), sub="eoffice-g23").status_code == 422
    assert len(feed(intake)) == 1
    # Corrected, the document is registered: its statuses follow the refusal in the stream.
    created = post_packet(intake, official_packet(), sub="eoffice-g23")
    assert created.status_code == 201
    assert [(i["directive_id"], i["status_code"]) for i in feed(intake)] == [
        (None, "02"),
        (created.get_json()["id"], "01"),
        (created.get_json()["id"], "03"),
    ]


def test_an_attachment_that_is_not_what_it_says_is_refused_to_its_sender(intake: IntakeApp) -> None:
    response = post_packet(intake, official_packet(attachment=b"MZ\x90\x00 a program, not a PDF"))
    assert response.status_code == 422
    (item,) = feed(intake)
    assert item["status_code"] == "02" and item["sender"] == SENDER
    assert "tệp đính kèm" in item["description"]


def test_a_packet_refused_for_its_signature_tells_the_sender_why(tmp_path: Path) -> None:
    strict = build_intake_app(intake_environ(tmp_path, DOCROUTE_EDXML_REQUIRE_SIGNATURE="true"))
    try:
        response = post_packet(strict, official_packet())
        assert response.status_code == 422 and "Signature" in response.get_json()["errors"]
        (item,) = feed(strict)
        assert item["description"].startswith(
            "Từ chối tiếp nhận văn bản: chữ ký số của gói tin không hợp lệ hoặc không có (Signature: "
        )
    finally:
        strict.deps.engine.dispose()


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (without_sender_id(missing_attachment()), 422),
        (b"<edXML", 422),
        # An update of a document never received: 404, and no 02 (an update is answered 15 or 16).
        (official_packet(doc_type=2), 404),
    ],
    ids=["no-organ-id", "not-well-formed", "update-packet"],
)
def test_only_a_new_document_packet_that_names_its_sender_is_answered(
    intake: IntakeApp, body: bytes, status: int
) -> None:
    assert post_packet(intake, body).status_code == status
    assert feed(intake) == []


def test_a_refused_packet_without_a_document_id_is_named_by_the_one_it_composes(intake: IntakeApp) -> None:
    element = f"<edXML:DocumentId>{DOCUMENT_ID}</edXML:DocumentId>".encode()
    body = missing_attachment()
    assert element in body
    assert post_packet(intake, body.replace(element, b"")).status_code == 422
    (item,) = feed(intake)
    # From/OrganId, Code and PromulgationDate compose it, as QCVN 102 does.
    assert item["document_id"] == DOCUMENT_ID


class StepClock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


def deliverer(intake: IntakeApp) -> WebhookDeliverer:
    return WebhookDeliverer(
        intake.deps.engine,
        sender=intake.deps.department.organ,
        policy=TargetPolicy(production=False, timeout=5.0),
        retry=RetryPolicy(timedelta(seconds=5), timedelta(minutes=10), timedelta(hours=24)),
        secrets=intake.deps.secret_box,
        clock=StepClock(),
    )


def subscribe(intake: IntakeApp, **body: Any) -> dict[str, Any]:
    response = intake.client.post("/v1/subscriptions", json=body, headers=intake.auth("admin"))
    assert response.status_code == 201, response.get_json()
    created: dict[str, Any] = response.get_json()
    return created


def test_a_refusal_reaches_the_senders_webhook_signed_and_not_a_directive_filter(intake: IntakeApp) -> None:
    receiver = Receiver().start()
    try:
        by_sender = subscribe(intake, url=receiver.url, senders=[SENDER])
        receiver.use_secret(by_sender["secret"])
        subscribe(intake, url=receiver.url, directives=["some-directive"])
        assert post_packet(intake, missing_attachment()).status_code == 422
        sender = deliverer(intake)
        assert sender.round() == 1
        (delivery,) = receiver.deliveries
        data = delivery["json"]["data"]
        assert data["directive_id"] is None and data["status_code"] == "02"
        assert data["sender"] == SENDER and data["document_id"] == DOCUMENT_ID
        assert receiver.received.refused == 0
        assert sender.round() == 0
    finally:
        receiver.stop()


# -- 15 / 16 ----------------------------------------------------------------------------------------------


def codes(intake: IntakeApp, directive_id: str) -> list[tuple[str, str]]:
    response = intake.client.get(
        f"/v1/directives/{directive_id}/status-updates", headers=intake.auth("clerk")
    )
    return [(i["status_code"], i["description"]) for i in response.get_json()["items"]]


def registered(intake: IntakeApp) -> dict[str, Any]:
    response = post_packet(intake, official_packet())
    assert response.status_code == 201, response.get_json()
    created: dict[str, Any] = response.get_json()
    return created


def revoke(intake: IntakeApp, directive_id: str) -> Any:
    return intake.client.post(
        f"/v1/directives/{directive_id}:revoke",
        json={"reason": "Ban hành nhầm"},
        headers=intake.auth("clerk"),
    )


def test_an_accepted_revocation_yields_15_once(intake: IntakeApp) -> None:
    directive = registered(intake)
    assert revoke(intake, directive["id"]).status_code == 200
    assert revoke(intake, directive["id"]).status_code == 200  # already revoked: nothing new
    assert [code for code, _ in codes(intake, directive["id"])] == ["01", "03", "15"]
    assert codes(intake, directive["id"])[-1][1] == "Đồng ý lấy lại văn bản"
    items = feed(intake)
    packet = read_status(items[-1]["packet"].encode("utf-8"))
    assert packet.status_code == "15" and packet.response_for.document_id == DOCUMENT_ID
    assert packet.staff is not None and packet.staff.staff == "test-clerk"


def test_a_revocation_packet_accepted_yields_15_from_its_sender(intake: IntakeApp) -> None:
    directive = registered(intake)
    response = post_packet(intake, official_packet(doc_type=1))
    assert response.status_code == 200, response.get_json()
    ((code, text),) = codes(intake, directive["id"])[2:]
    assert (code, text) == ("15", "Đồng ý lấy lại văn bản")
    staff = read_status(feed(intake)[-1]["packet"].encode("utf-8")).staff
    assert staff is not None and staff.staff == f"edxml:{SENDER}"


def test_a_refused_revocation_yields_16_once_with_the_reason(intake: IntakeApp) -> None:
    directive = registered(intake)
    refused = intake.client.post(
        f"/v1/directives/{directive['id']}:reject",
        json={"reason": "Không đúng thẩm quyền"},
        headers=intake.auth("clerk"),
    )
    assert refused.status_code == 200
    assert revoke(intake, directive["id"]).status_code == 409
    assert revoke(intake, directive["id"]).status_code == 409
    assert post_packet(intake, official_packet(doc_type=1)).status_code == 409
    assert codes(intake, directive["id"])[2:] == [
        ("02", "Từ chối tiếp nhận văn bản: Không đúng thẩm quyền"),
        ("16", "Từ chối lấy lại văn bản: văn bản đã bị từ chối tiếp nhận"),
    ]


def test_update_and_replacement_call_the_same_function_once_per_kind_and_occasion(intake: IntakeApp) -> None:
    directive_id = registered(intake)["id"]
    deps = intake.deps
    directive = deps.repository.get(directive_id)
    assert directive is not None

    def tell(kind: LifecycleKind, accepted: bool, occasion: str | None = None) -> bool:
        return record_lifecycle_status(
            deps.engine,
            directive,
            kind,
            accepted=accepted,
            department=deps.department,
            reason=None if accepted else "văn bản đã được thay thế bằng văn bản khác",
            actor="van-thu",
            occasion=occasion,
            clock=deps.clock,
        )

    assert tell(LifecycleKind.UPDATE, True) is True
    assert tell(LifecycleKind.UPDATE, True) is False  # once
    assert tell(LifecycleKind.REPLACEMENT, False, occasion="packet-a") is True
    assert tell(LifecycleKind.REPLACEMENT, False, occasion="packet-a") is False
    assert tell(LifecycleKind.REPLACEMENT, False, occasion="packet-b") is True
    assert codes(intake, directive_id)[2:] == [
        ("15", "Đồng ý cập nhật văn bản"),
        ("16", "Từ chối thay thế văn bản: văn bản đã được thay thế bằng văn bản khác"),
        ("16", "Từ chối thay thế văn bản: văn bản đã được thay thế bằng văn bản khác"),
    ]


# -- StaffInfo from the units' contacts ---------------------------------------------------------------------


UNITS_YAML = """\
units:
  - {code: SYT, name: "Sở Y tế", staff: "Lê Thị Cúc", mobile: "0271 3870 001", email: "vanphong@syt.gov.vn"}
  - {code: BPTV, name: "Đài Phát thanh - Truyền hình và Báo Bình Phước"}
"""


def test_progress_statuses_carry_the_units_name_and_contact(tmp_path: Path) -> None:
    units = tmp_path / "status-units.yaml"
    units.write_text(UNITS_YAML, encoding="utf-8")
    app = build_intake_app(
        intake_environ(
            tmp_path,
            DOCROUTE_STATUS_UNITS_FILE=str(units),
            DOCROUTE_STATUS_CONTACT_PHONE="0271 3879 999",
            DOCROUTE_STATUS_CONTACT_EMAIL="vanthu@stttt.gov.vn",
        )
    )
    try:
        directive_id = registered(app)["id"]
        doc = {"directive_id": directive_id, "role": "chu_tri", "updated_at": "2026-03-02T04:00:00+00:00"}
        assigned = Envelope.new(
            "routing.tasks_assigned",
            {
                "directive_id": directive_id,
                "tasks": [
                    doc | {"id": "t1", "unit": "SYT", "status": "assigned"},
                    doc | {"id": "t2", "unit": "BPTV", "status": "assigned"},
                ],
            },
            producer="routing",
        )
        started = Envelope.new(
            "routing.task_status_changed",
            {
                "task_id": "t1",
                "directive_id": directive_id,
                "unit": "SYT",
                "role": "chu_tri",
                "status": "in_progress",
                "actor": "syt-chuyen-vien",
                "changed_at": "2026-03-02T05:00:00+00:00",
            },
            producer="routing",
        )
        for envelope in (assigned, started):
            apply_task_event(envelope, engine=app.deps.engine, consumer="q", department=app.deps.department)
        staff = {
            item["status_code"]: item["staff"] for item in feed(app) if item["directive_id"] == directive_id
        }
        assert staff["01"] == {
            "department": "Văn thư",
            "staff": None,
            "mobile": "0271 3879 999",
            "email": "vanthu@stttt.gov.vn",
        }
        # Two chủ trì units: both named (by code order), the desk's contact (it coordinates them).
        assert staff["04"] == {
            "department": "Đài Phát thanh - Truyền hình và Báo Bình Phước, Sở Y tế",
            "staff": None,
            "mobile": "0271 3879 999",
            "email": "vanthu@stttt.gov.vn",
        }
        # The unit that started: its own name, person and contact.
        assert staff["05"] == {
            "department": "Sở Y tế",
            "staff": "syt-chuyen-vien",
            "mobile": "0271 3870 001",
            "email": "vanphong@syt.gov.vn",
        }
        packet = read_status(feed(app)[-1]["packet"].encode("utf-8"))
        assert packet.staff is not None and packet.staff.department == "Sở Y tế"
    finally:
        app.deps.engine.dispose()


# -- webhook secrets at rest ------------------------------------------------------------------------------


def stored_secret(intake: IntakeApp, subscription_id: str) -> str:
    with intake.deps.engine.connect() as conn:
        value: str = conn.execute(
            sa.select(webhook_subscriptions.c.secret).where(webhook_subscriptions.c.id == subscription_id)
        ).scalar_one()
    return value


def test_a_subscriptions_secret_is_stored_encrypted_and_still_signs(intake: IntakeApp) -> None:
    created = subscribe(intake, url="http://127.0.0.1:9/hooks")
    stored = stored_secret(intake, created["id"])
    assert stored.startswith(SEALED_PREFIX)
    assert created["secret"] not in stored and created["secret"][6:] not in stored
    assert intake.deps.secret_box.open(stored) == created["secret"]
    leased = deliverer(intake)
    assert leased.store.box.open(stored) == created["secret"]


def test_a_key_rotation_re_encrypts_every_secret_and_old_rows_in_clear_are_sealed(intake: IntakeApp) -> None:
    old_box = intake.deps.secret_box
    created = subscribe(intake, url="http://127.0.0.1:9/hooks")
    with intake.deps.engine.begin() as conn:  # a row from before encryption (migration 0005 seals these)
        conn.execute(
            sa.insert(webhook_subscriptions).values(
                id="legacy",
                url="http://127.0.0.1:9/old",
                senders=None,
                directives=None,
                format="json",
                secret="whsec_" + "A" * 44,
                active=True,
                fanned_cursor=0,
                created_at=datetime.now(UTC),
                created_by="admin",
            )
        )
    old_keys = intake.deps.settings.closed_loop.webhook_secret_keys
    new_key = "x7bNHcM1QylCbcpOTMBxYR0AUlZJr3hswVe3d5G5zAo="
    rotated = SecretBox((new_key, *old_keys))
    assert rotated.open(stored_secret(intake, created["id"])) == created["secret"]
    assert reseal_all(intake.deps.engine, rotated) == 2
    assert reseal_all(intake.deps.engine, rotated) == 0
    only_new = SecretBox((new_key,))
    assert only_new.open(stored_secret(intake, created["id"])) == created["secret"]
    assert only_new.open(stored_secret(intake, "legacy")) == "whsec_" + "A" * 44
    with pytest.raises(SecretUnreadable):
        old_box.open(stored_secret(intake, created["id"]))


def test_revoking_a_replaced_directive_is_409_and_16_says_it_was_replaced(intake: IntakeApp) -> None:
    directive = registered(intake)
    with intake.deps.engine.begin() as conn:  # as a replacement packet leaves it
        conn.execute(
            sa.text("UPDATE directives SET status = 'replaced' WHERE id = :id"), {"id": directive["id"]}
        )
    response = revoke(intake, directive["id"])
    assert response.status_code == 409
    assert response.get_json()["type"].endswith("lifecycle-conflict")
    assert codes(intake, directive["id"])[2:] == [
        ("16", "Từ chối lấy lại văn bản: văn bản đã được thay thế bằng văn bản khác")
    ]


def test_a_broken_copy_of_a_registered_document_does_not_refuse_it(intake: IntakeApp) -> None:
    directive = registered(intake)
    assert post_packet(intake, missing_attachment()).status_code == 422
    assert [(i["directive_id"], i["status_code"]) for i in feed(intake)] == [
        (directive["id"], "01"),
        (directive["id"], "03"),
    ]
