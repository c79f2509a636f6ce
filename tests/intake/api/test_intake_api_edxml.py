"""POST /v1/edxml and a directive's packets: registering from QCVN 102 packets as from JSON, and back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from edxml_packets import BILLION_LAUGHS, DOCX, PDF, official_packet, shuffled_vendor_packet
from intake.domain import edxml
from intake_testing import IntakeApp, build_intake_app, intake_environ

XML = "application/xml"


def post_packet(intake: IntakeApp, body: bytes, *, role: str = "submitter", content_type: str = XML):
    return intake.client.post("/v1/edxml", data=body, content_type=content_type, headers=intake.auth(role))


def register_total(intake: IntakeApp) -> int:
    return int(intake.client.get("/v1/directives", headers=intake.auth("clerk")).get_json()["total"])


def test_a_packet_registers_a_directive_as_the_json_api_does(intake: IntakeApp) -> None:
    body = official_packet()
    response = post_packet(intake, body)
    assert response.status_code == 201, response.get_json()
    created = response.get_json()
    assert created["arrival_number"] == 1
    assert created["number"] == "1393/CVT-CL"
    assert created["issuer"] == {"name": "Cục Viễn thông", "code": "000.00.00.G23"}
    assert created["external_id"] == "000.00.00.G23,2021/04/08,1393/CVT-CL"
    assert created["document_type"] == "Công văn"
    assert created["urgency"] == "khan"
    assert created["due_date"] == "2021-04-30"
    assert created["signer"] == {
        "competence": "KT. CỤC TRƯỞNG",
        "position": "PHÓ CỤC TRƯỞNG",
        "full_name": "Nguyễn Văn A",
    }
    assert created["to_places"] == ["Như trên", "Lưu: VT, CL."]
    names = [(a["filename"], a["content_type"]) for a in created["attachments"]]
    assert names == [
        ("1393-CVT-CL.pdf", "application/pdf"),
        (edxml.PACKET_FILENAME, edxml.PACKET_CONTENT_TYPE),
    ]
    assert response.headers["Location"] == f"/v1/directives/{created['id']}"

    # The packet is kept byte for byte, and the PDF as it was in the packet.
    packet = intake.client.get(f"/v1/directives/{created['id']}/packet", headers=intake.auth("clerk"))
    assert packet.status_code == 200 and packet.data == body
    pdf = intake.client.get(created["attachments"][0]["url"], headers=intake.auth("clerk"))
    assert pdf.data == PDF


def test_the_same_packet_again_answers_the_first_201_and_registers_nothing_more(intake: IntakeApp) -> None:
    first = post_packet(intake, official_packet())
    again = post_packet(intake, official_packet())
    assert again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json()["id"] == first.get_json()["id"]
    assert register_total(intake) == 1


def test_the_same_document_id_with_other_content_is_a_409_naming_it(intake: IntakeApp) -> None:
    post_packet(intake, official_packet())
    changed = official_packet().replace("Đề nghị các Sở phối hợp.".encode(), "Nội dung khác.".encode())
    response = post_packet(intake, changed)
    assert response.status_code == 409
    problem = response.get_json()
    assert response.content_type.startswith("application/problem+json")
    assert "000.00.00.G23,2021/04/08,1393/CVT-CL" in problem["errors"]["DocumentId"][0]
    assert register_total(intake) == 1


def test_another_vendors_shape_with_a_zip_registers_each_file(intake: IntakeApp) -> None:
    response = post_packet(intake, shuffled_vendor_packet(), content_type="application/edxml+xml")
    assert response.status_code == 201, response.get_json()
    created = response.get_json()
    assert created["number"] == "171-CV/BTGTU"
    assert created["issued_date"] == "2021-04-09"
    assert created["urgency"] == "hoa_toc"
    files = {a["filename"]: a for a in created["attachments"]}
    assert set(files) == {"171-CV.pdf", "phu-luc.docx", edxml.PACKET_FILENAME}
    docx = intake.client.get(files["phu-luc.docx"]["url"], headers=intake.auth("clerk"))
    assert docx.data == DOCX


def test_a_packet_can_come_as_a_multipart_part(intake: IntakeApp) -> None:
    import io

    response = intake.client.post(
        "/v1/edxml",
        data={"packet": (io.BytesIO(official_packet()), "goi-tin.edxml", XML)},
        content_type="multipart/form-data",
        headers=intake.auth("clerk"),
    )
    assert response.status_code == 201, response.get_json()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (BILLION_LAUGHS, "packet"),
        (b"<edXML", "packet"),
        (official_packet(doc_type=3), "ReplacementInfoList"),
    ],
    ids=["entity-expansion", "not-well-formed", "replacement-naming-nothing"],
)
def test_refused_packets_name_the_part_and_store_nothing(intake: IntakeApp, body: bytes, field: str) -> None:
    response = post_packet(intake, body)
    assert response.status_code == 422
    problem = response.get_json()
    assert problem["type"].endswith("invalid-edxml-packet")
    assert field in problem["errors"]
    assert register_total(intake) == 0


def test_a_body_that_is_not_xml_is_a_415(intake: IntakeApp) -> None:
    response = post_packet(intake, b"{}", content_type="application/json")
    assert response.status_code == 415


def test_units_and_auditors_cannot_send_packets(intake: IntakeApp) -> None:
    assert post_packet(intake, official_packet(), role="auditor").status_code == 403
    assert post_packet(intake, official_packet(), role="unit").status_code == 403


def test_a_directive_written_as_a_packet_reads_back_to_the_same_directive(intake: IntakeApp) -> None:
    created = post_packet(intake, shuffled_vendor_packet()).get_json()
    written = intake.client.get(f"/v1/directives/{created['id']}/edxml", headers=intake.auth("auditor"))
    assert written.status_code == 200 and written.content_type.startswith("application/xml")
    again = edxml.read_packet(written.data)
    fields = edxml.metadata_fields(again)
    assert fields["number"] == created["number"]
    assert fields["issuer_name"] == created["issuer"]["name"]
    assert fields["issuer_code"] == created["issuer"]["code"]
    assert fields["issued_date"].isoformat() == created["issued_date"]
    assert fields["subject"] == created["subject"]
    assert fields["urgency"] == created["urgency"]
    assert fields["external_id"] == created["external_id"]
    # Its files, without the packet it arrived in.
    assert sorted((a.name, a.data) for a in again.attachments) == [
        ("171-CV.pdf", PDF),
        ("phu-luc.docx", DOCX),
    ]


def test_a_directive_registered_over_json_has_an_edxml_form_but_no_packet(intake: IntakeApp) -> None:
    from intake_testing import minimal_pdf, sample

    body = sample("1393-CVT-CL") | {
        "attachments": [
            {
                "filename": "cv.pdf",
                "content_type": "application/pdf",
                "content_base64": __import__("base64").b64encode(minimal_pdf()).decode(),
            }
        ]
    }
    created = intake.post_json(body).get_json()
    packet = intake.client.get(f"/v1/directives/{created['id']}/packet", headers=intake.auth("clerk"))
    assert packet.status_code == 404
    written = edxml.read_packet(
        intake.client.get(f"/v1/directives/{created['id']}/edxml", headers=intake.auth("clerk")).data
    )
    assert written.code.full == "1393/CVT-CL"
    assert written.subject == created["subject"]


# -- XML signatures -------------------------------------------------------------------------------------


def signed(body: bytes, pki) -> bytes:
    from lxml import etree
    from signxml import SignatureMethod, XMLSigner

    root = etree.fromstring(body)
    signer = XMLSigner(signature_algorithm=SignatureMethod.ECDSA_SHA256)
    signed_root = signer.sign(root, key=pki.key_pem, cert=pki.leaf_pem.decode())
    return bytes(etree.tostring(signed_root, xml_declaration=True, encoding="UTF-8"))


@pytest.fixture
def demo_pki():
    from docroute.demo_pdfs import make_pki

    return make_pki(signer_name="Văn thư Cục Viễn thông")


def _signature(intake: IntakeApp, directive_id: str) -> dict:
    packet = intake.client.get(f"/v1/directives/{directive_id}", headers=intake.auth("clerk")).get_json()
    return packet["exchange"]["signature"]


def test_a_signed_packet_records_a_valid_trusted_signature(tmp_path: Path, demo_pki) -> None:
    trust = tmp_path / "ca.pem"
    trust.write_bytes(demo_pki.ca_pem)
    intake = build_intake_app(intake_environ(tmp_path, DOCROUTE_TRUST_STORE=str(trust)))
    created = post_packet(intake, signed(official_packet(), demo_pki)).get_json()
    signature = _signature(intake, created["id"])
    assert signature["status"] == "valid" and signature["trusted"] is True
    assert "Văn thư Cục Viễn thông" in signature["subject"]


def test_an_unsigned_packet_is_recorded_as_such_and_taken_by_default(intake: IntakeApp) -> None:
    created = post_packet(intake, official_packet()).get_json()
    assert _signature(intake, created["id"])["status"] == "absent"


def test_a_packet_changed_after_signing_is_recorded_invalid(intake: IntakeApp, demo_pki) -> None:
    tampered = signed(official_packet(), demo_pki).replace(
        "Đề nghị các Sở".encode(), "Yêu cầu các Sở".encode()
    )
    created = post_packet(intake, tampered).get_json()
    signature = _signature(intake, created["id"])
    assert signature["status"] == "invalid" and signature["trusted"] is False


def test_a_setting_refuses_packets_without_a_valid_signature(tmp_path: Path) -> None:
    intake = build_intake_app(intake_environ(tmp_path, DOCROUTE_EDXML_REQUIRE_SIGNATURE="true"))
    response = post_packet(intake, official_packet())
    assert response.status_code == 422
    assert "Signature" in response.get_json()["errors"]
    assert register_total(intake) == 0


def test_the_packet_is_a_readers_own_business(intake: IntakeApp) -> None:
    created = post_packet(intake, official_packet(), role="submitter").get_json()
    other = intake.client.get(
        f"/v1/directives/{created['id']}/packet", headers=intake.auth("submitter", sub="another-system")
    )
    assert other.status_code == 404
    json.dumps(created)  # the resource is plain JSON
