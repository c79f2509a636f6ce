"""Revoking a directive: POST /v1/directives/{id}:revoke and edXML revocation packets (BussinessDocType 1)."""

from __future__ import annotations

import json

import sqlalchemy as sa
from edxml_packets import official_packet
from intake.adapters.tables import outbox
from intake_testing import IntakeApp


def revoke(intake: IntakeApp, directive_id: str, body: dict, role: str = "clerk"):
    return intake.client.post(f"/v1/directives/{directive_id}:revoke", json=body, headers=intake.auth(role))


def events(intake: IntakeApp, kind: str) -> list[dict]:
    with intake.deps.engine.connect() as conn:
        bodies = conn.execute(sa.select(outbox.c.body).order_by(outbox.c.id)).scalars().all()
    found = [json.loads(bytes(body)) for body in bodies]
    return [event for event in found if event["type"] == kind]


def registered(intake: IntakeApp) -> dict:
    response = intake.client.post(
        "/v1/edxml", data=official_packet(), content_type="application/xml", headers=intake.auth("submitter")
    )
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def test_a_clerk_revokes_a_directive_with_a_reason_and_it_is_announced_once(intake: IntakeApp) -> None:
    directive = registered(intake)
    response = revoke(intake, directive["id"], {"reason": "Văn bản ban hành nhầm, thu hồi để sửa"})
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["status"] == "revoked"
    again = revoke(intake, directive["id"], {"reason": "lần nữa"})
    assert again.status_code == 200 and again.get_json()["status"] == "revoked"
    (event,) = events(intake, "intake.directive_revoked")
    assert event["payload"]["directive_id"] == directive["id"]
    assert event["payload"]["reason"] == "Văn bản ban hành nhầm, thu hồi để sửa"
    assert event["payload"]["revoked_by"] == "test-clerk"
    listed = intake.client.get("/v1/directives", headers=intake.auth("clerk")).get_json()["items"]
    assert [item["status"] for item in listed] == ["revoked"]


def test_a_revocation_needs_a_reason_a_known_directive_and_a_clerk(intake: IntakeApp) -> None:
    directive = registered(intake)
    missing = revoke(intake, directive["id"], {})
    assert missing.status_code == 422 and "reason" in missing.get_json()["errors"]
    blank = revoke(intake, directive["id"], {"reason": "   "})
    assert blank.status_code == 422 and "reason" in blank.get_json()["errors"]
    assert revoke(intake, "no-such-directive", {"reason": "x"}).status_code == 404
    assert revoke(intake, directive["id"], {"reason": "x"}, role="submitter").status_code == 403
    assert revoke(intake, directive["id"], {"reason": "x"}, role="auditor").status_code == 403
    assert events(intake, "intake.directive_revoked") == []


def test_a_revocation_packet_revokes_the_document_it_names_and_is_kept_with_it(intake: IntakeApp) -> None:
    directive = registered(intake)
    packet = official_packet(doc_type=1).replace(
        "Văn bản điện tử mới".encode(), "Thu hồi để ban hành lại".encode()
    )
    response = intake.client.post(
        "/v1/edxml", data=packet, content_type="application/xml", headers=intake.auth("submitter")
    )
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["id"] == directive["id"] and body["status"] == "revoked"
    kept = [a for a in body["attachments"] if a["filename"] == "thu-hoi-edxml.xml"]
    assert len(kept) == 1
    assert intake.client.get(kept[0]["url"], headers=intake.auth("clerk")).data == packet
    (event,) = events(intake, "intake.directive_revoked")
    assert event["payload"]["reason"] == "Thu hồi để ban hành lại"
    assert event["payload"]["packet"]["sha256"] == kept[0]["sha256"]
    assert event["payload"]["revoked_by"] == "edxml:000.00.00.G23"


def test_a_revocation_packet_for_an_unknown_document_is_a_404_naming_it(intake: IntakeApp) -> None:
    response = intake.client.post(
        "/v1/edxml",
        data=official_packet(doc_type=1),
        content_type="application/xml",
        headers=intake.auth("submitter"),
    )
    assert response.status_code == 404
    assert "DocumentId" in response.get_json()["errors"]
