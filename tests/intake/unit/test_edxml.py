"""edXML packets: tolerant reading of three vendors' shapes, refusals before expansion, strict writing."""

from __future__ import annotations

from datetime import date, datetime

import pytest
from edxml_packets import BILLION_LAUGHS, DOCX, PDF, official_packet, shuffled_vendor_packet, zipped
from intake.domain import edxml
from intake.domain.edxml import BusinessDocType, InvalidPacket, read_packet, read_status, write_packet

NS = edxml.NS


def test_the_official_samples_order_reads_every_part() -> None:
    packet = read_packet(official_packet())
    assert packet.sender.organ_id == "000.00.00.G23"
    assert packet.sender.name == "Cục Viễn thông"
    assert packet.sender.email == "vanthu@vnta.gov.vn"
    assert [r.name for r in packet.recipients] == ["Sở Thông tin và Truyền thông Bình Phước"]
    assert packet.code.full == "1393/CVT-CL"
    assert packet.promulgation_date == date(2021, 4, 8)
    assert packet.place == "Hà Nội"
    assert packet.document_type.type_name == "Công văn"
    assert packet.subject.startswith("V/v phối hợp, hỗ trợ, thúc đẩy ứng dụng i-Speed")
    assert packet.signer == edxml.SignerInfo("KT. CỤC TRƯỞNG", "PHÓ CỤC TRƯỞNG", "Nguyễn Văn A")
    assert packet.due_date == date(2021, 4, 30)
    assert packet.to_places == ("Như trên", "Lưu: VT, CL.")
    assert packet.other.priority == 1 and edxml.urgency_of(packet.other.priority) == "khan"
    assert packet.other.page_amount == 2 and packet.other.appendixes == ("Phụ lục I",)
    assert packet.steering_type == 1
    assert packet.document_id == "000.00.00.G23,2021/04/08,1393/CVT-CL"
    assert packet.traces == (edxml.TraceHeader("000.00.00.G23", datetime(2021, 4, 8, 9, 15)),)
    assert packet.business.doc_type is BusinessDocType.NEW
    assert packet.business.staff == edxml.StaffInfo(department="Văn thư", staff="Trần Thị B")
    assert [(a.content_id, a.name, a.content_type, a.data) for a in packet.attachments] == [
        ("209", "1393-CVT-CL.pdf", "application/pdf", PDF)
    ]
    assert packet.signed is False


def test_a_shuffled_packet_with_vendor_parts_and_a_zip_reads_the_same_way() -> None:
    packet = read_packet(shuffled_vendor_packet())
    assert packet.sender.organ_id == "000.00.70.H10"
    assert packet.code.full == "171-CV/BTGTU"  # the Party form
    assert packet.promulgation_date == date(2021, 4, 9)
    assert packet.due_date == date(2021, 4, 15)
    assert edxml.urgency_of(packet.other.priority) == "hoa_toc"
    # The zip is unpacked: one attachment per file, typed by name.
    assert [(a.name, a.content_type, a.data) for a in packet.attachments] == [
        ("171-CV.pdf", "application/pdf", PDF),
        ("phu-luc.docx", edxml._DOCX, DOCX),
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2021/04/08", date(2021, 4, 8)),
        ("2021-04-08", date(2021, 4, 8)),
        ("08/04/2021", date(2021, 4, 8)),
        ("08/04/2021 14:30:00", date(2021, 4, 8)),
        ("2021/04/08 14:30", date(2021, 4, 8)),
    ],
)
def test_dates_are_read_in_every_form_vendors_send(text: str, expected: date) -> None:
    assert edxml.parse_date(text) == expected


def test_an_unreadable_date_names_its_element() -> None:
    with pytest.raises(InvalidPacket) as caught:
        read_packet(official_packet().replace(b"2021/04/30", b"30 April"))
    assert caught.value.field == "DueDate"


XXE = b"""<?xml version="1.0"?>
<!DOCTYPE edXML [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<edXML xmlns="http://www.mic.gov.vn/TBT/QCVN_102_2016"><Subject>&secret;</Subject></edXML>"""


@pytest.mark.parametrize("body", [BILLION_LAUGHS, XXE], ids=["billion-laughs", "xxe"])
def test_dtds_and_entities_are_refused_before_any_expansion(body: bytes) -> None:
    with pytest.raises(InvalidPacket, match="DTD"):
        read_packet(body)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"<edXML", "not well-formed"),
        (b"<html xmlns='http://www.w3.org/1999/xhtml'/>", "root element"),
        (b"<edXML xmlns='http://example.org/other'><x/></edXML>", "root element"),
        (b"<edXML xmlns='http://www.mic.gov.vn/TBT/QCVN_102_2016'/>", "MessageHeader"),
    ],
)
def test_what_is_not_an_edxml_packet_is_refused(body: bytes, message: str) -> None:
    with pytest.raises(InvalidPacket, match=message):
        read_packet(body)


@pytest.mark.parametrize(
    ("cut", "field"),
    [
        (b"<edXML:From>", "From"),
        (b"<edXML:Code>", "Code"),
        (b"<edXML:Subject>", "Subject"),
    ],
)
def test_a_new_document_without_a_required_part_names_it(cut: bytes, field: str) -> None:
    packet = official_packet()
    start = packet.index(cut)
    end = packet.index(cut.replace(b"<", b"</"), start) + len(cut) + 1
    with pytest.raises(InvalidPacket) as caught:
        read_packet(packet[:start] + packet[end:])
    assert caught.value.field == field


def test_a_manifest_reference_without_its_attachment_is_refused() -> None:
    packet = official_packet().replace(b"<ContentId>cid:209</ContentId>", b"<ContentId>cid:210</ContentId>")
    with pytest.raises(InvalidPacket, match="209"):
        read_packet(packet)


def test_a_new_document_needs_an_attachment_but_a_revocation_does_not() -> None:
    bare = official_packet()
    bare = bare[: bare.index(b"<AttachmentEncoded>")] + b"</edXML>"
    bare = bare.replace(bare[bare.index(b"<edXML:Reference>") : bare.index(b"</edXML:Reference>") + 18], b"")
    with pytest.raises(InvalidPacket, match="at least one attachment"):
        read_packet(bare)
    revocation = read_packet(bare.replace(b"<edXML:BussinessDocType>0<", b"<edXML:BussinessDocType>1<"))
    assert revocation.business.doc_type is BusinessDocType.REVOCATION
    assert revocation.attachments == ()


def test_a_zip_bomb_is_refused_without_inflating_it() -> None:
    bomb = zipped({"bomb.pdf": b"\0" * (20 * 1024 * 1024)})  # about 20 KB that unpacks to 20 MB
    packet = official_packet(attachment=bomb).replace(b"application/pdf", b"application/zip")
    with pytest.raises(InvalidPacket, match="zip bomb"):
        read_packet(packet)


def test_a_replacement_names_the_documents_it_replaces() -> None:
    info = (
        "<edXML:ReplacementInfoList><edXML:ReplacementInfo>"
        "<edXML:DocumentId>000.00.00.G23,2021/04/01,1300/CVT-CL</edXML:DocumentId>"
        "<edXML:OrganIdList><edXML:OrganId>000.00.13.H10</edXML:OrganId></edXML:OrganIdList>"
        "</edXML:ReplacementInfo></edXML:ReplacementInfoList>"
    )
    packet = read_packet(official_packet(doc_type=3, extra_header=info))
    assert packet.business.doc_type is BusinessDocType.REPLACEMENT
    assert packet.business.replacements == (
        edxml.ReplacementInfo("000.00.00.G23,2021/04/01,1300/CVT-CL", ("000.00.13.H10",)),
    )


STANDARD_ORDER = [
    "From", "To", "Code", "PromulgationInfo", "DocumentType", "Subject", "Content", "SignerInfo", "DueDate",
    "ToPlaces", "OtherInfo", "ResponseFor", "SteeringType", "DocumentId",
]  # fmt: skip


def test_writing_emits_the_standards_order_and_reads_back_to_the_same_packet() -> None:
    original = read_packet(shuffled_vendor_packet())
    original = edxml.Packet(
        **{
            **original.__dict__,
            "response_for": (edxml.ResponseFor("000.00.13.H10", "12/STTTT-VP", date(2021, 3, 1), "x,y,z"),),
            "steering_type": 1,
            "document_id": edxml.document_id("000.00.70.H10", date(2021, 4, 9), original.code),
        }
    )
    written = write_packet(original)
    message = edxml.parse_xml(written).find(f".//{{{NS}}}MessageHeader")
    assert message is not None
    order = [child.tag.rsplit("}", 1)[1] for child in message]
    assert order == [tag for tag in STANDARD_ORDER if tag in order]
    assert {"From", "Code", "Subject", "DocumentId", "ResponseFor"} <= set(order)
    again = read_packet(written)
    assert again == original
    assert again.document_id == "000.00.70.H10,2021/04/09,171-CV/BTGTU"


def test_status_packets_round_trip_and_the_older_timestamp_form_is_read() -> None:
    status = edxml.StatusPacket(
        sender=edxml.Organ("000.00.13.H10", "Sở Thông tin và Truyền thông Bình Phước"),
        response_for=edxml.ResponseFor(
            "000.00.00.G23", "1393/CVT-CL", date(2021, 4, 8), "000.00.00.G23,2021/04/08,1393/CVT-CL"
        ),
        status_code="03",
        description="Đã tiếp nhận, số đến 12",
        timestamp=datetime(2021, 4, 9, 8, 0, 5),
        staff=edxml.StaffInfo(department="Văn phòng Sở", staff="Lê Văn Thư", email="vt@bp.gov.vn"),
    )
    written = edxml.write_status(status)
    assert read_status(written) == status
    older = written.replace(b"2021/04/09 08:00:05", b"09/04/2021 08:00:05")
    assert read_status(older).timestamp == status.timestamp


def test_a_status_code_is_two_digits() -> None:
    with pytest.raises(ValueError, match="two digits"):
        edxml.write_status(
            edxml.StatusPacket(edxml.Organ(), edxml.ResponseFor(), "3", "", datetime(2021, 1, 1))
        )


def test_a_packet_refused_for_its_attachments_is_still_attributed_to_its_sender() -> None:
    body = official_packet().replace(b"<ContentId>cid:209</ContentId>", b"<ContentId>cid:1</ContentId>")
    with pytest.raises(InvalidPacket):
        read_packet(body)
    found = edxml.attribute(body)
    assert found is not None
    assert (found.organ_id, found.document_id) == ("000.00.00.G23", "000.00.00.G23,2021/04/08,1393/CVT-CL")
    assert found.response_for.code == "1393/CVT-CL"
    assert found.response_for.promulgation_date == date(2021, 4, 8)
    assert found.doc_type is BusinessDocType.NEW
    assert edxml.attribute(official_packet(doc_type=1)).doc_type is BusinessDocType.REVOCATION  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "body",
    [
        BILLION_LAUGHS,
        b"<edXML",
        b"<other/>",
        official_packet().replace(b"<edXML:OrganId>000.00.00.G23</edXML:OrganId>", b"", 1),
        official_packet().replace(
            b"000.00.00.G23</edXML:OrganId><edXML:OrganName>", b"g23 x</edXML:OrganId><edXML:OrganName>"
        ),
    ],
    ids=["entities", "not-well-formed", "not-edxml", "no-organ-id", "not-an-agency-id"],
)
def test_a_packet_that_does_not_name_its_sender_is_not_attributed(body: bytes) -> None:
    assert edxml.attribute(body) is None
