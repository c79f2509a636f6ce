"""POST /v1/directives on SQLite + the filesystem store: registration, numbering, idempotency, duplicates."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime

from intake.messages import DIRECTIVE_REGISTERED_KEY, EXCHANGE, DirectiveRegisteredWire
from intake_testing import SAMPLE_NAMES, IntakeApp, minimal_pdf, sample


def with_pdf(body: dict, content: bytes, filename: str = "văn bản.pdf") -> dict:
    return {
        **body,
        "attachments": [
            {
                "filename": filename,
                "content_type": "application/pdf",
                "content_base64": base64.b64encode(content).decode(),
            }
        ],
    }


def test_json_submission_is_registered_with_number_location_and_attachment(intake: IntakeApp) -> None:
    content = minimal_pdf("1393")
    response = intake.post_json(with_pdf(sample("1393-CVT-CL"), content, "Công văn 1393.pdf"))
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert response.headers["Location"] == f"/v1/directives/{body['id']}"
    assert body["status"] == "registered"
    assert body["arrival_number"] == 1
    assert body["arrival_date"] == "2026-03-02"
    assert (body["number"], body["code_number"], body["code_notation"]) == ("1393/CVT-CL", "1393", "CVT-CL")
    assert body["document_type"] == "Công văn"
    assert body["issuer"] == {"name": "Cục Viễn thông", "code": None}
    assert body["signer"]["competence"] == "KT. CỤC TRƯỞNG"
    assert body["subject"].startswith("V/v phối hợp, hỗ trợ")
    [attachment] = body["attachments"]
    assert attachment["filename"] == "Công văn 1393.pdf"
    assert attachment["size"] == len(content)
    assert attachment["sha256"] == hashlib.sha256(content).hexdigest()
    assert intake.staged_objects() == [f"directives/{body['id']}/{attachment['sha256']}"]
    # Vietnamese text is sent as UTF-8, not \u escapes.
    assert "Cục Viễn thông".encode() in response.data


def test_arrival_numbers_count_up_without_gaps(intake: IntakeApp) -> None:
    numbers = []
    for name in SAMPLE_NAMES:
        response = intake.post_json(with_pdf(sample(name), minimal_pdf(name)))
        assert response.status_code == 201, response.get_json()
        numbers.append(response.get_json()["arrival_number"])
    assert numbers == [1, 2, 3]


def test_arrival_numbers_restart_at_one_in_a_new_year_in_vietnam_time(intake: IntakeApp) -> None:
    intake.clock.now = datetime(2025, 12, 31, 16, 59, tzinfo=UTC)  # 23:59 on 31/12 in Hà Nội
    first = intake.post_json(sample("1393-CVT-CL")).get_json()
    second = intake.post_json(sample("171-CV-BTGTU")).get_json()
    intake.clock.now = datetime(2025, 12, 31, 17, 0, tzinfo=UTC)  # 00:00 on 1/1 in Hà Nội
    third = intake.post_json(sample("120-KH-BCD")).get_json()
    assert [(d["arrival_number"], d["arrival_date"]) for d in (first, second, third)] == [
        (1, "2025-12-31"),
        (2, "2025-12-31"),
        (1, "2026-01-01"),
    ]


def test_multipart_submission_keeps_vietnamese_names_and_strips_paths(intake: IntakeApp) -> None:
    content = minimal_pdf("kh")
    response = intake.post_multipart(
        sample("120-KH-BCD"),
        [
            (content, "../../tmp/Kế hoạch 120.pdf", "application/pdf"),
            (b"ghi chu", "ghi chú.txt", "text/plain"),
        ],
    )
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert [a["filename"] for a in body["attachments"]] == ["Kế hoạch 120.pdf", "ghi chú.txt"]
    assert body["document_type"] == "Kế hoạch"
    assert body["code_notation"] == "KH-BCĐ"
    assert body["urgency"] == "khan"
    assert len(intake.staged_objects()) == 2


def test_document_type_abbreviation_is_normalised_and_missing_type_inferred(intake: IntakeApp) -> None:
    body = {**sample("120-KH-BCD"), "document_type": "KH"}
    assert intake.post_json(body).get_json()["document_type"] == "Kế hoạch"
    no_type = {k: v for k, v in sample("171-CV-BTGTU").items() if k != "document_type"}
    assert intake.post_json(no_type).get_json()["document_type"] == "Công văn"


def test_the_event_is_in_the_outbox_with_the_design_payload(intake: IntakeApp) -> None:
    import sqlalchemy as sa

    content = minimal_pdf()
    created = intake.post_json(with_pdf(sample("171-CV-BTGTU"), content)).get_json()
    with intake.deps.engine.connect() as conn:
        [row] = conn.execute(sa.text("SELECT exchange, routing_key, body FROM outbox")).all()
    assert (row.exchange, row.routing_key) == (EXCHANGE, DIRECTIVE_REGISTERED_KEY)
    assert (EXCHANGE, DIRECTIVE_REGISTERED_KEY) == ("intake.events", "intake.directive_registered.v1")
    envelope = json.loads(bytes(row.body).decode("utf-8"))
    assert envelope["type"] == "intake.directive_registered"
    assert envelope["version"] == 1
    assert envelope["producer"] == "intake"
    payload = envelope["payload"]
    assert DirectiveRegisteredWire().validate(payload) == {}
    assert payload["directive_id"] == created["id"]
    assert payload["arrival_number"] == 1
    assert payload["metadata"]["number"] == "171-CV/BTGTU"
    assert payload["metadata"]["code_notation"] == "CV/BTGTU"
    assert payload["metadata"]["issuer"]["name"] == "Ban Tuyên giáo Tỉnh ủy Bình Phước"
    [attachment] = payload["attachments"]
    assert attachment["bucket"] == "docroute-staging"
    assert attachment["key"] == f"directives/{created['id']}/{hashlib.sha256(content).hexdigest()}"
    # The envelope is UTF-8 JSON with the Vietnamese text as written.
    assert "Tuyên giáo".encode() in bytes(row.body)


def test_raw_metadata_and_external_id_are_kept(intake: IntakeApp) -> None:
    import sqlalchemy as sa

    body = {**sample("1393-CVT-CL"), "external_id": "eoffice-42", "vendor_field": {"ghi_chú": "giữ nguyên"}}
    created = intake.post_json(body).get_json()
    assert created["external_id"] == "eoffice-42"
    with intake.deps.engine.connect() as conn:
        raw = conn.execute(sa.text("SELECT raw_metadata FROM directives")).scalar_one()
    assert json.loads(raw) == body
    assert "giữ nguyên" in raw


def test_same_idempotency_key_and_body_answers_the_first_201_again(intake: IntakeApp) -> None:
    body = with_pdf(sample("1393-CVT-CL"), minimal_pdf())
    first = intake.post_json(body, headers={"Idempotency-Key": "k-1"})
    again = intake.post_json(body, headers={"Idempotency-Key": "k-1"})
    assert first.status_code == again.status_code == 201
    assert again.get_json() == first.get_json()
    assert again.headers["Location"] == first.headers["Location"]
    assert intake.count_rows("directives") == 1
    assert intake.count_rows("outbox") == 1
    assert len(intake.staged_objects()) == 1


def test_same_idempotency_key_with_another_body_is_refused(intake: IntakeApp) -> None:
    assert intake.post_json(sample("1393-CVT-CL"), headers={"Idempotency-Key": "k-2"}).status_code == 201
    response = intake.post_json(sample("171-CV-BTGTU"), headers={"Idempotency-Key": "k-2"})
    assert response.status_code == 422
    problem = response.get_json()
    assert response.content_type == "application/problem+json"
    assert "Idempotency-Key" in problem["errors"]
    assert intake.count_rows("directives") == 1


def test_same_document_again_without_key_is_a_conflict_naming_the_existing_one(intake: IntakeApp) -> None:
    first = intake.post_json(sample("1393-CVT-CL")).get_json()
    # Same issuer, same number (zero padding is not significant), same issued date.
    again = {**sample("1393-CVT-CL"), "number": "01393/CVT-CL", "subject": "khác"}
    # With a file: the duplicate is found inside the numbering transaction, after its file was staged.
    response = intake.post_json(with_pdf(again, minimal_pdf("the duplicate's file")))
    assert response.status_code == 409
    problem = response.get_json()
    assert problem["existing_id"] == first["id"]
    assert problem["existing_url"] == f"/v1/directives/{first['id']}"
    assert problem["type"].endswith("/duplicate-directive")
    assert intake.count_rows("directives") == 1
    assert intake.staged_objects() == []


def test_a_database_failure_after_staging_removes_the_staged_files(intake: IntakeApp, monkeypatch) -> None:
    from sqlalchemy.exc import OperationalError

    def broken(_new):
        raise OperationalError("INSERT", {}, Exception("database went away"))

    monkeypatch.setattr(intake.deps.repository, "register", broken)
    response = intake.post_json(with_pdf(sample("1393-CVT-CL"), minimal_pdf()))
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    monkeypatch.undo()
    intake.assert_nothing_stored()
