"""Updating and replacing a directive: PATCH /v1/directives/{id} (a new revision, listed at …/revisions),
POST /v1/directives/{id}:replace, and edXML update (BussinessDocType 2) and replacement (3) packets."""

from __future__ import annotations

import base64
import json
from typing import Any

import sqlalchemy as sa
from edxml_packets import DOCX, PACKETS, PDF, official_packet, shuffled_vendor_packet, zipped
from intake.adapters.tables import outbox
from intake.domain import edxml
from intake_testing import IntakeApp, minimal_pdf, sample

MERGE_PATCH = "application/merge-patch+json"
ORIGINAL_ID = "000.00.00.G23,2021/04/08,1393/CVT-CL"


def events(intake: IntakeApp, kind: str) -> list[dict[str, Any]]:
    with intake.deps.engine.connect() as conn:
        bodies = conn.execute(sa.select(outbox.c.body).order_by(outbox.c.id)).scalars().all()
    return [e for e in (json.loads(bytes(body)) for body in bodies) if e["type"] == kind]


def registered(intake: IntakeApp) -> dict[str, Any]:
    response = intake.client.post(
        "/v1/edxml", data=official_packet(), content_type="application/xml", headers=intake.auth("submitter")
    )
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def patch(intake: IntakeApp, directive_id: str, body: Any, *, role: str = "clerk", ctype: str = MERGE_PATCH):
    return intake.client.patch(
        f"/v1/directives/{directive_id}",
        data=json.dumps(body, ensure_ascii=False).encode(),
        content_type=ctype,
        headers=intake.auth(role),
    )


def test_an_update_makes_a_new_revision_keeps_the_old_one_and_is_announced_once(intake: IntakeApp) -> None:
    directive = registered(intake)
    assert directive["revision"] == 1 and directive["replaces"] is None
    body = {
        "due_date": "2021-05-15",
        "subject": "V/v đẩy mạnh ứng dụng i-Speed (cập nhật)",
        "reason": "Gia hạn theo đề nghị của Cục",
    }
    response = patch(intake, directive["id"], body)
    assert response.status_code == 200, response.get_json()
    updated = response.get_json()
    assert updated["revision"] == 2
    assert updated["due_date"] == "2021-05-15"
    assert updated["subject"] == "V/v đẩy mạnh ứng dụng i-Speed (cập nhật)"
    # The same update again changes nothing and announces nothing.
    again = patch(intake, directive["id"], body)
    assert again.status_code == 200 and again.get_json()["revision"] == 2
    (event,) = events(intake, "intake.directive_updated")
    payload = event["payload"]
    assert payload["revision"] == 2
    assert payload["changes"]["due_date"] == {"from": "2021-04-30", "to": "2021-05-15"}
    assert payload["metadata"]["due_date"] == "2021-05-15"
    assert payload["reason"] == "Gia hạn theo đề nghị của Cục"
    assert payload["updated_by"] == "test-clerk" and payload["packet"] is None
    revisions = intake.client.get(
        f"/v1/directives/{directive['id']}/revisions", headers=intake.auth("auditor")
    )
    assert revisions.status_code == 200
    items = revisions.get_json()["items"]
    assert [item["revision"] for item in items] == [1, 2]
    assert items[0]["changes"] == {}
    assert items[1]["changes"]["subject"]["from"].startswith("V/v phối hợp, hỗ trợ")
    assert items[1]["reason"] == "Gia hạn theo đề nghị của Cục" and items[1]["by"] == "test-clerk"
    # The register shows the directive as it is now, searchable by its new subject.
    found = intake.client.get("/v1/directives?q=cap nhat", headers=intake.auth("clerk")).get_json()
    assert [item["id"] for item in found["items"]] == [directive["id"]]


def test_an_update_may_clear_the_due_date_and_add_a_file(intake: IntakeApp) -> None:
    directive = registered(intake)
    extra = minimal_pdf("phụ lục bổ sung")
    response = patch(
        intake,
        directive["id"],
        {
            "due_date": None,
            "urgency": "hoa_toc",
            "attachments": [
                {
                    "filename": "Phụ lục bổ sung.pdf",
                    "content_type": "application/pdf",
                    "content_base64": base64.b64encode(extra).decode(),
                }
            ],
        },
        ctype="application/json",
    )
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["due_date"] is None and body["urgency"] == "hoa_toc"
    added = body["attachments"][-1]
    assert added["filename"] == "Phụ lục bổ sung.pdf"
    assert intake.client.get(added["url"], headers=intake.auth("clerk")).data == extra
    (event,) = events(intake, "intake.directive_updated")
    assert [a["id"] for a in event["payload"]["attachments_added"]] == [added["id"]]
    assert event["payload"]["changes"]["attachments"] == {
        "added": [{"id": added["id"], "filename": "Phụ lục bổ sung.pdf"}]
    }


def test_an_update_is_refused_with_a_problem_naming_what_is_wrong(intake: IntakeApp) -> None:
    directive = registered(intake)
    unknown = patch(intake, directive["id"], {"issuer": {"name": "Khác"}})
    assert unknown.status_code == 422 and "issuer" in unknown.get_json()["errors"]
    urgency = patch(intake, directive["id"], {"urgency": "rat_gap"})
    assert urgency.status_code == 422 and "urgency" in urgency.get_json()["errors"]
    early = patch(intake, directive["id"], {"due_date": "2020-01-01"})
    assert early.status_code == 422 and "due_date" in early.get_json()["errors"]
    blank = patch(intake, directive["id"], {"subject": ""})
    assert blank.status_code == 422 and "subject" in blank.get_json()["errors"]
    assert patch(intake, directive["id"], {"subject": "x"}, ctype="text/plain").status_code == 415
    assert patch(intake, directive["id"], {"subject": "x"}, role="submitter").status_code == 403
    missing = patch(intake, "no-such-directive", {"subject": "x"})
    assert missing.status_code == 404
    assert missing.headers["Content-Type"].startswith("application/problem+json")
    assert events(intake, "intake.directive_updated") == []
    revoked = intake.client.post(
        f"/v1/directives/{directive['id']}:revoke", json={"reason": "Thu hồi"}, headers=intake.auth("clerk")
    )
    assert revoked.status_code == 200
    late = patch(intake, directive["id"], {"subject": "Sau khi thu hồi"})
    assert late.status_code == 409 and late.get_json()["type"].endswith("lifecycle-conflict")


def test_an_update_packet_changes_the_directive_it_names_and_is_kept(intake: IntakeApp) -> None:
    directive = registered(intake)
    packet = (
        official_packet(doc_type=2)
        .replace(b"<edXML:DueDate>2021/04/30</edXML:DueDate>", b"<edXML:DueDate>2021/05/20</edXML:DueDate>")
        .replace("Văn bản điện tử mới".encode(), "Cập nhật hạn xử lý".encode())
    )
    response = intake.client.post(
        "/v1/edxml", data=packet, content_type="application/xml", headers=intake.auth("submitter")
    )
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["id"] == directive["id"] and body["revision"] == 2 and body["due_date"] == "2021-05-20"
    # The same file as before is not added again; the packet itself is kept with the directive.
    assert [a["filename"] for a in body["attachments"]].count("1393-CVT-CL.pdf") == 1
    (kept,) = [a for a in body["attachments"] if a["filename"] == "cap-nhat-edxml.xml"]
    assert intake.client.get(kept["url"], headers=intake.auth("clerk")).data == packet
    (event,) = events(intake, "intake.directive_updated")
    assert event["payload"]["changes"] == {"due_date": {"from": "2021-04-30", "to": "2021-05-20"}}
    assert event["payload"]["packet"]["sha256"] == kept["sha256"]
    assert event["payload"]["updated_by"] == "edxml:000.00.00.G23"
    assert event["payload"]["reason"] == "Cập nhật hạn xử lý"
    items = intake.client.get(
        f"/v1/directives/{directive['id']}/revisions", headers=intake.auth("clerk")
    ).get_json()["items"]
    assert items[1]["packet_url"] == kept["url"]
    # Written back out, the directive carries its due date as it is now and its own file, not the packets.
    written = intake.client.get(f"/v1/directives/{directive['id']}/edxml", headers=intake.auth("clerk"))
    assert written.status_code == 200
    again = edxml.read_packet(written.data)
    assert again.due_date.isoformat() == "2021-05-20"
    assert [a.name for a in again.attachments] == ["1393-CVT-CL.pdf"]


def replacement_packet() -> bytes:
    info = (
        "<edXML:ReplacementInfoList><edXML:ReplacementInfo>"
        f"<edXML:DocumentId>{ORIGINAL_ID}</edXML:DocumentId>"
        "<edXML:OrganIdList><edXML:OrganId>000.00.13.H10</edXML:OrganId></edXML:OrganIdList>"
        "</edXML:ReplacementInfo></edXML:ReplacementInfoList>"
    )
    text = official_packet(doc_type=3, extra_header=info).decode()
    text = text.replace(ORIGINAL_ID, "000.00.00.G23,2021/04/12,1450/CVT-CL", 1)
    text = text.replace("<edXML:CodeNumber>1393<", "<edXML:CodeNumber>1450<")
    text = text.replace("2021/04/08</edXML:PromulgationDate>", "2021/04/12</edXML:PromulgationDate>")
    return text.replace("Văn bản điện tử mới", "Thay thế Công văn 1393/CVT-CL").encode()


def test_a_replacement_packet_registers_the_new_document_and_replaces_the_old(intake: IntakeApp) -> None:
    old = registered(intake)
    packet = replacement_packet()
    response = intake.client.post(
        "/v1/edxml", data=packet, content_type="application/xml", headers=intake.auth("submitter")
    )
    assert response.status_code == 201, response.get_json()
    new = response.get_json()
    assert new["number"] == "1450/CVT-CL" and new["status"] == "registered"
    assert new["replaces"]["id"] == old["id"]
    before = intake.client.get(old["url"], headers=intake.auth("clerk")).get_json()
    assert before["status"] == "replaced" and before["replaced_by"]["id"] == new["id"]
    (event,) = events(intake, "intake.directive_replaced")
    assert event["payload"]["directive_id"] == old["id"]
    assert event["payload"]["replacement"] == {
        "directive_id": new["id"],
        "arrival_number": new["arrival_number"],
        "number": "1450/CVT-CL",
    }
    assert event["payload"]["reason"] == "Thay thế Công văn 1393/CVT-CL"
    assert [e["payload"]["directive_id"] for e in events(intake, "intake.directive_registered")] == [
        old["id"],
        new["id"],
    ]
    # The same packet again answers the first registration and replaces nothing twice.
    again = intake.client.post(
        "/v1/edxml", data=packet, content_type="application/xml", headers=intake.auth("submitter")
    )
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json()["id"] == new["id"]
    assert len(events(intake, "intake.directive_replaced")) == 1
    # A replaced directive can be neither updated nor revoked.
    assert patch(intake, old["id"], {"subject": "x"}).status_code == 409
    refused = intake.client.post(
        f"/v1/directives/{old['id']}:revoke", json={"reason": "x"}, headers=intake.auth("clerk")
    )
    assert refused.status_code == 409


def test_a_replacement_packet_naming_an_unknown_document_is_a_404_with_nothing_stored(
    intake: IntakeApp,
) -> None:
    response = intake.client.post(
        "/v1/edxml",
        data=replacement_packet(),
        content_type="application/xml",
        headers=intake.auth("submitter"),
    )
    assert response.status_code == 404 and "DocumentId" in response.get_json()["errors"]
    assert intake.count_rows("directives") == 0


def replace_json(intake: IntakeApp, directive_id: str, body: dict[str, Any], **params: str):
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return intake.client.post(
        f"/v1/directives/{directive_id}:replace" + (f"?{query}" if query else ""),
        data=json.dumps(body, ensure_ascii=False).encode(),
        content_type="application/json",
        headers=intake.auth("clerk"),
    )


def new_document() -> dict[str, Any]:
    body = sample("1393-CVT-CL")
    body["number"] = "1451/CVT-CL"
    body["issued_date"] = "2021-04-13"
    body["attachments"] = [
        {
            "filename": "1451-CVT-CL.pdf",
            "content_type": "application/pdf",
            "content_base64": base64.b64encode(minimal_pdf("1451")).decode(),
        }
    ]
    return body


def test_a_clerk_replaces_a_directive_over_rest_and_a_retry_replays(intake: IntakeApp) -> None:
    old = registered(intake)
    response = replace_json(intake, old["id"], new_document(), reason="Ban hành lại")
    assert response.status_code == 201, response.get_json()
    new = response.get_json()
    assert new["replaces"] == {"id": old["id"], "url": old["url"]}
    assert response.headers["Location"] == new["url"]
    again = replace_json(intake, old["id"], new_document(), reason="Ban hành lại")
    assert again.status_code == 201 and again.headers.get("Idempotent-Replayed") == "true"
    assert again.get_json()["id"] == new["id"]
    (event,) = events(intake, "intake.directive_replaced")
    assert event["payload"]["reason"] == "Ban hành lại" and event["payload"]["replaced_by"] == "test-clerk"
    # Replacing it again with another document: it was replaced already.
    other = new_document()
    other["number"] = "1452/CVT-CL"
    conflict = replace_json(intake, old["id"], other)
    assert conflict.status_code == 409
    assert replace_json(intake, "no-such-directive", other).status_code == 404
    listed = intake.client.get("/v1/directives", headers=intake.auth("clerk")).get_json()["items"]
    assert sorted(item["status"] for item in listed) == ["registered", "replaced"]


def test_an_update_in_another_vendors_shape_with_a_zip_and_day_first_dates(intake: IntakeApp) -> None:
    """The shuffled vendor shape (no DocumentId, dd/MM/yyyy, zipped files): the update names its document as
    its registration did, moves the due date and adds only the file it did not have."""
    first = intake.client.post(
        "/v1/edxml",
        data=shuffled_vendor_packet(),
        content_type="application/xml",
        headers=intake.auth("clerk"),
    )
    assert first.status_code == 201, first.get_json()
    directive = first.get_json()
    extra = minimal_pdf("phụ lục 2")
    payload = base64.encodebytes(zipped({"171-CV.pdf": PDF, "phu-luc.docx": DOCX, "phu-luc-2.pdf": extra}))
    update = (
        PACKETS.joinpath("shuffled-vendor.xml")
        .read_text(encoding="utf-8")
        .format(NS=edxml.NS, payload=payload.decode())
        .replace("<edXML:BussinessDocType>0<", "<edXML:BussinessDocType>2<")
        .replace("<edXML:DueDate>15/04/2021<", "<edXML:DueDate>30/04/2021<")
        .encode()
    )
    response = intake.client.post(
        "/v1/edxml", data=update, content_type="application/xml", headers=intake.auth("clerk")
    )
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["id"] == directive["id"] and body["revision"] == 2 and body["due_date"] == "2021-04-30"
    added = [a["filename"] for a in body["attachments"][len(directive["attachments"]) :]]
    assert added == ["phu-luc-2.pdf", "cap-nhat-edxml.xml"]
    (event,) = events(intake, "intake.directive_updated")
    assert set(event["payload"]["changes"]) == {"due_date", "attachments"}


def test_a_replacement_cut_short_after_the_registration_is_finished_by_the_same_request_again(
    intake: IntakeApp,
) -> None:
    """The new directive is registered, then the old one marked: a process killed in between leaves the new
    one registered; the client's retry replays the registration and marks the old one."""
    old = registered(intake)
    body = new_document()
    # What the first attempt had committed when it was killed: the registration, under the request's key.
    first = intake.client.post(
        "/v1/directives",
        data=json.dumps(body, ensure_ascii=False).encode(),
        content_type="application/json",
        headers={**intake.auth("clerk"), "Idempotency-Key": f"replace:{old['id']}"},
    )
    assert first.status_code == 201
    assert intake.client.get(old["url"], headers=intake.auth("clerk")).get_json()["status"] == "registered"
    retry = replace_json(intake, old["id"], body)
    assert retry.status_code == 201 and retry.headers["Idempotent-Replayed"] == "true"
    assert retry.get_json()["id"] == first.get_json()["id"]
    assert retry.get_json()["replaces"]["id"] == old["id"]
    assert intake.client.get(old["url"], headers=intake.auth("clerk")).get_json()["status"] == "replaced"
    assert len(events(intake, "intake.directive_replaced")) == 1


# -- what the sender is told: 15 for each change made, 16 once for a change its state refuses --------------


def told(intake: IntakeApp, directive_id: str) -> list[tuple[str, str]]:
    """The statuses after 01 and 03, as (code, Vietnamese description)."""
    response = intake.client.get(
        f"/v1/directives/{directive_id}/status-updates", headers=intake.auth("clerk")
    )
    assert response.status_code == 200, response.get_json()
    return [(i["status_code"], i["description"]) for i in response.get_json()["items"]][2:]


def test_each_revision_an_update_makes_is_answered_15_and_a_refused_update_16_once(intake: IntakeApp) -> None:
    directive = registered(intake)
    assert patch(intake, directive["id"], {"subject": "Lần một"}).status_code == 200
    assert patch(intake, directive["id"], {"subject": "Lần một"}).status_code == 200  # nothing new: no 15
    assert (
        patch(intake, directive["id"], {"subject": "Lần hai", "reason": "Sửa trích yếu"}).status_code == 200
    )
    assert told(intake, directive["id"]) == [
        ("15", "Đồng ý cập nhật văn bản"),
        ("15", "Đồng ý cập nhật văn bản: Sửa trích yếu"),
    ]
    revoked = intake.client.post(
        f"/v1/directives/{directive['id']}:revoke",
        json={"reason": "Ban hành nhầm"},
        headers=intake.auth("clerk"),
    )
    assert revoked.status_code == 200
    assert patch(intake, directive["id"], {"subject": "Sau khi thu hồi"}).status_code == 409
    assert patch(intake, directive["id"], {"subject": "Lần nữa"}).status_code == 409
    assert told(intake, directive["id"])[2:] == [
        ("15", "Đồng ý lấy lại văn bản"),
        ("16", "Từ chối cập nhật văn bản: văn bản đã được thu hồi"),
    ]


def test_the_replaced_directives_sender_is_answered_15_and_a_second_replacement_16(intake: IntakeApp) -> None:
    old = registered(intake)
    assert replace_json(intake, old["id"], new_document(), reason="Ban hành lại").status_code == 201
    assert told(intake, old["id"]) == [("15", "Đồng ý thay thế văn bản: Ban hành lại")]
    other = new_document()
    other["number"] = "1452/CVT-CL"
    assert replace_json(intake, old["id"], other).status_code == 409
    assert told(intake, old["id"])[1:] == [
        ("16", "Từ chối thay thế văn bản: văn bản đã được thay thế bằng văn bản khác")
    ]
