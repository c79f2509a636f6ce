"""edXML (QCVN 102:2016/BTTTT, amended 2022): reading packets tolerantly and writing them strictly.

Reading accepts what real e-office systems send: elements in any order, vendor elements (ignored here,
kept by the caller in the stored packet), content ids with or without `cid:`, dates as `yyyy/MM/dd`,
`yyyy-MM-dd` or `dd/MM/yyyy` with or without a time, base64 broken over lines, attachments zipped. It
refuses, before anything is expanded, a DTD, entity declarations and external references (billion
laughs, XXE), and a zip whose files would unpack beyond the limits (zip bombs). Writing emits the
MessageHeader's parts in the standard's order, so that what docroute sends parses anywhere.

Pure: the XML is read with the standard library's expat and built into an ElementTree by hand, so that
the DTD handlers can refuse a declaration the moment expat meets it.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
import xml.etree.ElementTree as ET
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import IntEnum
from typing import NoReturn
from xml.parsers import expat

from intake.domain.errors import IntakeError
from intake.domain.models import AGENCY_CODE

NS = "http://www.mic.gov.vn/TBT/QCVN_102_2016"
_Q = "{" + NS + "}"
ZIP_TYPES = frozenset({"application/zip", "application/x-zip-compressed"})


class InvalidPacket(IntakeError):
    """The packet is not an edXML packet docroute can take; `field` names the part (e.g. `Code`)."""


class BusinessDocType(IntEnum):
    """TraceHeaderList/Bussiness/BussinessDocType (sic): what the packet asks of a document."""

    NEW = 0
    REVOCATION = 1
    UPDATE = 2
    REPLACEMENT = 3


@dataclass(frozen=True)
class Limits:
    """Bounds on what one packet may unpack to."""

    max_attachment_bytes: int = 50 * 1024 * 1024
    max_total_bytes: int = 200 * 1024 * 1024
    max_zip_ratio: int = 100
    max_zip_members: int = 100


@dataclass(frozen=True)
class Organ:
    """From / To: an agency, by its identifier (mã định danh) and name."""

    organ_id: str | None = None
    name: str | None = None
    in_charge: str | None = None
    address: str | None = None
    email: str | None = None
    telephone: str | None = None
    fax: str | None = None
    website: str | None = None


@dataclass(frozen=True)
class Code:
    number: str
    notation: str

    @property
    def full(self) -> str:
        """số và ký hiệu: `1393/CVT-CL`; a Party notation that holds its own `/` (`CV/BTGTU`) joins with
        `-`, as in `171-CV/BTGTU`."""
        if not self.notation:
            return self.number
        return f"{self.number}{'-' if '/' in self.notation else '/'}{self.notation}"


@dataclass(frozen=True)
class DocumentTypeInfo:
    type: int | None = None
    type_detail: int | None = None
    type_name: str | None = None


@dataclass(frozen=True)
class SignerInfo:
    competence: str | None = None
    position: str | None = None
    full_name: str | None = None


@dataclass(frozen=True)
class OtherInfo:
    priority: int | None = None
    sphere_of_promulgation: str | None = None
    typer_notation: str | None = None
    promulgation_amount: int | None = None
    page_amount: int | None = None
    appendixes: tuple[str, ...] = ()


@dataclass(frozen=True)
class ResponseFor:
    organ_id: str | None = None
    code: str | None = None
    promulgation_date: date | None = None
    document_id: str | None = None


@dataclass(frozen=True)
class TraceHeader:
    organ_id: str | None
    timestamp: datetime | None


@dataclass(frozen=True)
class StaffInfo:
    department: str | None = None
    staff: str | None = None
    mobile: str | None = None
    email: str | None = None


@dataclass(frozen=True)
class ReplacementInfo:
    document_id: str
    organ_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class Business:
    doc_type: BusinessDocType = BusinessDocType.NEW
    reason: str | None = None
    paper: bool = False
    staff: StaffInfo | None = None
    replacements: tuple[ReplacementInfo, ...] = ()


@dataclass(frozen=True)
class Attachment:
    """One file, unpacked: a zipped attachment becomes one Attachment per file inside it."""

    content_id: str
    name: str
    content_type: str
    data: bytes = field(repr=False)
    description: str | None = None


@dataclass(frozen=True)
class Packet:
    """An edXML document packet as docroute understands it."""

    sender: Organ
    code: Code
    subject: str
    recipients: tuple[Organ, ...] = ()
    place: str | None = None
    promulgation_date: date | None = None
    document_type: DocumentTypeInfo = DocumentTypeInfo()
    content: str | None = None
    signer: SignerInfo | None = None
    due_date: date | None = None
    to_places: tuple[str, ...] = ()
    other: OtherInfo = OtherInfo()
    response_for: tuple[ResponseFor, ...] = ()
    steering_type: int | None = None
    document_id: str | None = None
    traces: tuple[TraceHeader, ...] = ()
    business: Business = Business()
    attachments: tuple[Attachment, ...] = ()
    signed: bool = False


@dataclass(frozen=True)
class StatusPacket:
    """A status packet (thông điệp trạng thái): what became of a document the sender sent."""

    sender: Organ
    response_for: ResponseFor
    status_code: str
    description: str
    timestamp: datetime
    staff: StaffInfo | None = None


# -- reading -------------------------------------------------------------------------------------------


def _refuse(message: str, where: str = "packet") -> NoReturn:
    raise InvalidPacket(message, field=where)


def parse_xml(data: bytes) -> ET.Element:
    """The document's root; refuses DTDs, entity declarations and external references as expat meets them,
    so nothing is ever expanded."""
    builder = ET.TreeBuilder()
    parser = expat.ParserCreate(namespace_separator="}")

    def start(name: str, attributes: dict[str, str]) -> None:
        builder.start("{" + name if "}" in name else name, attributes)

    def end(name: str) -> None:
        builder.end("{" + name if "}" in name else name)

    def doctype(*_: object) -> None:
        _refuse("a DTD (<!DOCTYPE>) is not allowed in an edXML packet")

    def entity(*_: object) -> None:
        _refuse("entity declarations are not allowed in an edXML packet")

    def external(*_: object) -> int:
        _refuse("external references are not allowed in an edXML packet")

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = builder.data
    parser.StartDoctypeDeclHandler = doctype
    parser.EntityDeclHandler = entity
    parser.UnparsedEntityDeclHandler = entity
    parser.ExternalEntityRefHandler = external
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    try:
        parser.Parse(data, True)
    except expat.ExpatError as exc:
        _refuse(f"not well-formed XML: {expat.ErrorString(exc.code)} at line {exc.lineno}")
    root: ET.Element = builder.close()
    return root


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _children(element: ET.Element | None, name: str) -> Iterator[ET.Element]:
    """Children called `name` in the edXML namespace or in none (vendors drop the prefix on some parts)."""
    if element is None:
        return
    for child in element:
        if isinstance(child.tag, str) and _local(child.tag) == name and child.tag in (_Q + name, name):
            yield child


def _child(element: ET.Element | None, name: str) -> ET.Element | None:
    return next(_children(element, name), None)


def _text(element: ET.Element | None, name: str) -> str | None:
    found = _child(element, name)
    if found is None:
        return None
    text = "".join(found.itertext()).strip()
    return text or None


def _int(element: ET.Element | None, name: str) -> int | None:
    text = _text(element, name)
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        _refuse(f"{name} must be a whole number, got {text[:40]!r}", name)


_DATE_FORMATS = ("%Y/%m/%d", "%Y-%m-%d", "%d/%m/%Y", "%d-%m-%Y")
_TIME_FORMATS = ("", " %H:%M:%S", " %H:%M", "T%H:%M:%S")


def parse_date(text: str, where: str = "date") -> date:
    """`yyyy/MM/dd`, `yyyy-MM-dd`, `dd/MM/yyyy` (or `dd-MM-yyyy`), with or without a time."""
    return parse_timestamp(text, where).date()


def parse_timestamp(text: str, where: str = "Timestamp") -> datetime:
    cleaned = text.strip()[:40]
    for day in _DATE_FORMATS:
        for time in _TIME_FORMATS:
            try:
                return datetime.strptime(cleaned, day + time)
            except ValueError:
                continue
    _refuse(f"{cleaned!r} is not a date in yyyy/MM/dd, yyyy-MM-dd or dd/MM/yyyy form", where)


def _date(element: ET.Element | None, name: str) -> date | None:
    text = _text(element, name)
    return None if text is None else parse_date(text, name)


def _organ(element: ET.Element | None) -> Organ:
    return Organ(
        organ_id=_text(element, "OrganId"),
        name=_text(element, "OrganName"),
        in_charge=_text(element, "OrganizationInCharge"),
        address=_text(element, "OrganAdd"),
        email=_text(element, "Email"),
        telephone=_text(element, "Telephone"),
        fax=_text(element, "Fax"),
        website=_text(element, "Website"),
    )


def _staff(element: ET.Element | None) -> StaffInfo | None:
    if element is None:
        return None
    return StaffInfo(
        department=_text(element, "Department"),
        staff=_text(element, "Staff"),
        mobile=_text(element, "Mobile"),
        email=_text(element, "Email"),
    )


def _response_for(element: ET.Element) -> ResponseFor:
    return ResponseFor(
        organ_id=_text(element, "OrganId"),
        code=_text(element, "Code"),
        promulgation_date=_date(element, "PromulgationDate"),
        document_id=_text(element, "DocumentId"),
    )


def _business(trace_list: ET.Element | None) -> Business:
    found = _child(trace_list, "Bussiness")
    if found is None:
        found = _child(trace_list, "Business")
    if found is None:
        return Business()
    raw = _int(found, "BussinessDocType")
    try:
        doc_type = BusinessDocType(raw if raw is not None else 0)
    except ValueError:
        _refuse(f"BussinessDocType {raw} is not 0 (new), 1 (revocation), 2 (update) or 3 (replacement)")
    replacements = tuple(
        ReplacementInfo(
            document_id=_text(info, "DocumentId") or "",
            organ_ids=tuple(
                "".join(o.itertext()).strip() for o in _children(_child(info, "OrganIdList"), "OrganId")
            ),
        )
        for info in _children(_child(found, "ReplacementInfoList"), "ReplacementInfo")
    )
    return Business(
        doc_type=doc_type,
        reason=_text(found, "BussinessDocReason"),
        paper=_text(found, "Paper") == "1",
        staff=_staff(_child(found, "StaffInfo")),
        replacements=replacements,
    )


def content_id(raw: str) -> str:
    """A content id without its `cid:` prefix or angle brackets, which vendors use or leave out."""
    cleaned = raw.strip().strip("<>")
    return cleaned[4:] if cleaned.lower().startswith("cid:") else cleaned


def _decode(text: str, where: str) -> bytes:
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        _refuse("ContentTransferEncoded is not valid base64", where)


def _unzip(data: bytes, where: str, limits: Limits) -> list[tuple[str, bytes]]:
    """The files of a zipped attachment, refusing a zip bomb before inflating beyond the limits."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        _refuse("declared as a zip archive but is not one", where)
    members = [info for info in archive.infolist() if not info.is_dir()]
    if len(members) > limits.max_zip_members:
        _refuse(f"the zip holds {len(members)} files; at most {limits.max_zip_members} are taken", where)
    declared = sum(info.file_size for info in members)
    if declared > limits.max_total_bytes or any(
        info.file_size > limits.max_attachment_bytes for info in members
    ):
        _refuse("the zip unpacks beyond the size limit (zip bomb?)", where)
    if declared > max(len(data), 1) * limits.max_zip_ratio:
        _refuse(f"the zip unpacks more than {limits.max_zip_ratio}× its size (zip bomb?)", where)
    files: list[tuple[str, bytes]] = []
    for info in members:
        # The header's sizes can lie: read at most one byte past what it declared, and refuse if it came.
        with archive.open(info) as member:
            content = member.read(info.file_size + 1)
        if len(content) > info.file_size:
            _refuse("a zip member is larger than its header says (zip bomb?)", where)
        files.append((info.filename.rsplit("/", 1)[-1], content))
    return files


def _attachments(root: ET.Element, references: list[ET.Element], limits: Limits) -> tuple[Attachment, ...]:
    encoded = {
        content_id(_text(item, "ContentId") or ""): item
        for item in _children(_child(root, "AttachmentEncoded"), "Attachment")
    }
    declared: dict[str, ET.Element] = {}
    for reference in references:
        declared[content_id(_text(reference, "ContentId") or "")] = reference
    if missing := sorted(set(declared) - set(encoded)):
        _refuse(f"the manifest names {', '.join(missing)} but no attachment carries it", "edXMLManifest")
    if extra := sorted(set(encoded) - set(declared)):
        _refuse(f"attachment {', '.join(extra)} is not in the manifest", "AttachmentEncoded")
    out: list[Attachment] = []
    total = 0
    for index, (cid, reference) in enumerate(declared.items()):
        item = encoded[cid]
        where = f"attachments[{index}]"
        name = _text(reference, "AttachmentName") or _text(item, "AttachmentName") or f"{cid}.bin"
        content_type = (_text(reference, "ContentType") or _text(item, "ContentType") or "").lower()
        data = _decode(_text(item, "ContentTransferEncoded") or "", where)
        description = _text(reference, "Description") or _text(item, "Description")
        if content_type in ZIP_TYPES or (not content_type and data[:4] == b"PK\x03\x04"):
            unpacked = _unzip(data, where, limits)
            for position, (inner, content) in enumerate(unpacked):
                out.append(Attachment(f"{cid}#{position}", inner, _type_of(inner), content, description))
                total += len(content)
        else:
            out.append(Attachment(cid, name, content_type or _type_of(name), data, description))
            total += len(data)
        if total > limits.max_total_bytes:
            _refuse("the attachments together exceed the size limit", "AttachmentEncoded")
    return tuple(out)


def _type_of(filename: str) -> str:
    lowered = filename.lower()
    for suffix, kind in ((".pdf", "application/pdf"), (".docx", _DOCX), (".doc", "application/msword")):
        if lowered.endswith(suffix):
            return kind
    return "application/octet-stream"


_DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


def _envelope_parts(root: ET.Element) -> tuple[ET.Element, ET.Element | None]:
    if root.tag not in (_Q + "edXML", "edXML"):
        _refuse(f"the root element is {root.tag!r}; an edXML packet's root is edXML in {NS}")
    if root.tag != _Q + "edXML" and not any(
        child.tag.startswith(_Q) for child in root.iter() if isinstance(child.tag, str)
    ):
        _refuse(f"no element is in the edXML namespace {NS}")
    envelope = _child(root, "edXMLEnvelope")
    header = _child(envelope, "edXMLHeader")
    message = _child(header, "MessageHeader")
    if message is None:
        _refuse("edXMLEnvelope/edXMLHeader/MessageHeader is missing", "MessageHeader")
    return message, header


def read_packet(data: bytes, *, limits: Limits = Limits()) -> Packet:
    """A document packet; raises InvalidPacket naming the part that is missing or wrong."""
    root = parse_xml(data)
    message, header = _envelope_parts(root)
    sender_element = _child(message, "From")
    if sender_element is None:
        _refuse("From (the sending agency) is required", "From")
    code_element = _child(message, "Code")
    business = _business(_child(header, "TraceHeaderList"))
    number = _text(code_element, "CodeNumber")
    if code_element is None or number is None:
        _refuse("Code with its CodeNumber is required", "Code")
    subject = _text(message, "Subject")
    if subject is None and business.doc_type in (BusinessDocType.NEW, BusinessDocType.REPLACEMENT):
        _refuse("Subject (trích yếu) is required", "Subject")
    references = list(
        _children(_child(_child(_child(root, "edXMLEnvelope"), "edXMLBody"), "edXMLManifest"), "Reference")
    )
    attachments = _attachments(root, references, limits)
    if not attachments and business.doc_type in (BusinessDocType.NEW, BusinessDocType.REPLACEMENT):
        _refuse("a new document needs at least one attachment", "AttachmentEncoded")
    promulgation = _child(message, "PromulgationInfo")
    other = _child(message, "OtherInfo")
    signer = _child(message, "SignerInfo")
    doc_type = _child(message, "DocumentType")
    return Packet(
        sender=_organ(sender_element),
        recipients=tuple(_organ(item) for item in _children(message, "To")),
        code=Code(number=number, notation=_text(code_element, "CodeNotation") or ""),
        place=_text(promulgation, "Place"),
        promulgation_date=_date(promulgation, "PromulgationDate"),
        document_type=DocumentTypeInfo(
            type=_int(doc_type, "Type"),
            type_detail=_int(doc_type, "TypeDetail"),
            type_name=_text(doc_type, "TypeName"),
        ),
        subject=subject or "",
        content=_text(message, "Content"),
        signer=None
        if signer is None
        else SignerInfo(_text(signer, "Competence"), _text(signer, "Position"), _text(signer, "FullName")),
        due_date=_date(message, "DueDate"),
        to_places=tuple(
            text
            for text in (
                "".join(p.itertext()).strip() for p in _children(_child(message, "ToPlaces"), "Place")
            )
            if text
        ),
        other=OtherInfo(
            priority=_int(other, "Priority"),
            sphere_of_promulgation=_text(other, "SphereOfPromulgation"),
            typer_notation=_text(other, "TyperNotation"),
            promulgation_amount=_int(other, "PromulgationAmount"),
            page_amount=_int(other, "PageAmount"),
            appendixes=tuple(
                "".join(a.itertext()).strip() for a in _children(_child(other, "Appendixes"), "Appendix")
            ),
        ),
        response_for=tuple(_response_for(item) for item in _children(message, "ResponseFor")),
        steering_type=_int(message, "SteeringType"),
        document_id=_text(message, "DocumentId"),
        traces=tuple(
            TraceHeader(
                organ_id=_text(item, "OrganId"),
                timestamp=None if (stamp := _text(item, "Timestamp")) is None else parse_timestamp(stamp),
            )
            for item in _children(_child(header, "TraceHeaderList"), "TraceHeader")
        ),
        business=business,
        attachments=attachments,
        signed=any(_local(child.tag) == "Signature" for child in (header if header is not None else [])),
    )


def read_status(data: bytes) -> StatusPacket:
    """A status packet; `Timestamp` in `yyyy/MM/dd HH:mm:ss` or the older `dd/MM/yyyy HH:mm:ss`."""
    message, _ = _envelope_parts(parse_xml(data))
    response_for = _child(message, "ResponseFor")
    code = _text(message, "StatusCode")
    stamp = _text(message, "Timestamp")
    if response_for is None or code is None or stamp is None:
        _refuse("a status packet needs ResponseFor, StatusCode and Timestamp", "MessageHeader")
    return StatusPacket(
        sender=_organ(_child(message, "From")),
        response_for=_response_for(response_for),
        status_code=code,
        description=_text(message, "Description") or "",
        timestamp=parse_timestamp(stamp),
        staff=_staff(_child(message, "StaffInfo")),
    )


@dataclass(frozen=True)
class Attribution:
    """Who sent a packet and which document it was, read from a packet that may be refused otherwise."""

    organ_id: str
    document_id: str
    response_for: ResponseFor
    doc_type: BusinessDocType | None


MAX_DOCUMENT_ID = 200


def attribute(data: bytes) -> Attribution | None:
    """The sender and DocumentId of a packet, when it is well-formed enough to tell them (a valid From/
    OrganId, and a DocumentId or the Code and PromulgationDate to compose one); None otherwise. Reads
    nothing else, so a packet refused for its attachments, its rules or its signature is still attributed.
    The XML is read by parse_xml: no DTD or entity is ever expanded."""
    try:
        root = parse_xml(data)
        message, header = _envelope_parts(root)
    except InvalidPacket:
        return None
    organ_id = _text(_child(message, "From"), "OrganId")
    if organ_id is None or not AGENCY_CODE.match(organ_id):
        return None
    code_element = _child(message, "Code")
    number = _text(code_element, "CodeNumber")
    code = None if number is None else Code(number, _text(code_element, "CodeNotation") or "")
    try:
        issued = _date(_child(message, "PromulgationInfo"), "PromulgationDate")
    except InvalidPacket:
        issued = None
    given = _text(message, "DocumentId")
    if given is None and code is not None and issued is not None:
        given = document_id(organ_id, issued, code)
    if given is None or len(given) > MAX_DOCUMENT_ID:
        return None
    try:
        doc_type: BusinessDocType | None = _business(_child(header, "TraceHeaderList")).doc_type
    except InvalidPacket:
        doc_type = None
    return Attribution(
        organ_id=organ_id,
        document_id=given,
        response_for=ResponseFor(
            organ_id=organ_id,
            code=None if code is None else code.full,
            promulgation_date=issued,
            document_id=given,
        ),
        doc_type=doc_type,
    )


# -- writing -------------------------------------------------------------------------------------------

ET.register_namespace("edXML", NS)


def _date_text(value: date) -> str:
    return value.strftime("%Y/%m/%d")


def _stamp_text(value: datetime) -> str:
    return value.strftime("%Y/%m/%d %H:%M:%S")


def _add(parent: ET.Element, name: str, value: object | None) -> ET.Element | None:
    """Appends `<edXML:name>value</…>` unless the value is absent (None or empty)."""
    if value is None or value == "" or value == ():
        return None
    element = ET.SubElement(parent, _Q + name)
    if isinstance(value, bool):
        element.text = "1" if value else "0"
    elif isinstance(value, datetime):
        element.text = _stamp_text(value)
    elif isinstance(value, date):
        element.text = _date_text(value)
    else:
        element.text = str(value)
    return element


def _add_organ(parent: ET.Element, name: str, organ: Organ) -> None:
    element = ET.SubElement(parent, _Q + name)
    for tag, value in (
        ("OrganId", organ.organ_id),
        ("OrganizationInCharge", organ.in_charge),
        ("OrganName", organ.name),
        ("OrganAdd", organ.address),
        ("Email", organ.email),
        ("Telephone", organ.telephone),
        ("Fax", organ.fax),
        ("Website", organ.website),
    ):
        _add(element, tag, value)


def _add_group(parent: ET.Element, name: str, items: Iterable[tuple[str, object | None]]) -> None:
    pairs = [(tag, value) for tag, value in items if value not in (None, "", ())]
    if not pairs:
        return
    element = ET.SubElement(parent, _Q + name)
    for tag, value in pairs:
        _add(element, tag, value)


def _add_response_for(parent: ET.Element, response_for: ResponseFor) -> None:
    _add_group(
        parent,
        "ResponseFor",
        (
            ("OrganId", response_for.organ_id),
            ("Code", response_for.code),
            ("PromulgationDate", response_for.promulgation_date),
            ("DocumentId", response_for.document_id),
        ),
    )


def _add_staff(parent: ET.Element, staff: StaffInfo | None) -> None:
    if staff is not None:
        _add_group(
            parent,
            "StaffInfo",
            (
                ("Department", staff.department),
                ("Staff", staff.staff),
                ("Mobile", staff.mobile),
                ("Email", staff.email),
            ),
        )


def _serialise(root: ET.Element) -> bytes:
    ET.indent(root, space=" ")
    written: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return written


def write_packet(packet: Packet) -> bytes:
    """The packet as QCVN 102 edXML, MessageHeader parts in the standard's order (1 From … 14 DocumentId)."""
    root = ET.Element(_Q + "edXML")
    envelope = ET.SubElement(root, _Q + "edXMLEnvelope")
    header = ET.SubElement(envelope, _Q + "edXMLHeader")
    message = ET.SubElement(header, _Q + "MessageHeader")
    _add_organ(message, "From", packet.sender)
    for recipient in packet.recipients:
        _add_organ(message, "To", recipient)
    _add_group(message, "Code", (("CodeNumber", packet.code.number), ("CodeNotation", packet.code.notation)))
    _add_group(
        message, "PromulgationInfo", (("Place", packet.place), ("PromulgationDate", packet.promulgation_date))
    )
    kind = packet.document_type
    _add_group(
        message,
        "DocumentType",
        (("Type", kind.type), ("TypeDetail", kind.type_detail), ("TypeName", kind.type_name)),
    )
    _add(message, "Subject", packet.subject)
    _add(message, "Content", packet.content)
    if packet.signer is not None:
        signer = packet.signer
        _add_group(
            message,
            "SignerInfo",
            (
                ("Competence", signer.competence),
                ("Position", signer.position),
                ("FullName", signer.full_name),
            ),
        )
    _add(message, "DueDate", packet.due_date)
    if packet.to_places:
        places = ET.SubElement(message, _Q + "ToPlaces")
        for place in packet.to_places:
            _add(places, "Place", place)
    other = packet.other
    other_element = ET.SubElement(message, _Q + "OtherInfo")
    for tag, value in (
        ("Priority", other.priority if other.priority is not None else 0),
        ("SphereOfPromulgation", other.sphere_of_promulgation),
        ("TyperNotation", other.typer_notation),
        ("PromulgationAmount", other.promulgation_amount),
        ("PageAmount", other.page_amount),
    ):
        _add(other_element, tag, value)
    if other.appendixes:
        appendixes = ET.SubElement(other_element, _Q + "Appendixes")
        for appendix in other.appendixes:
            _add(appendixes, "Appendix", appendix)
    for response_for in packet.response_for:
        _add_response_for(message, response_for)
    _add(message, "SteeringType", packet.steering_type)
    _add(message, "DocumentId", packet.document_id)
    traces = ET.SubElement(header, _Q + "TraceHeaderList")
    for trace in packet.traces:
        _add_group(traces, "TraceHeader", (("OrganId", trace.organ_id), ("Timestamp", trace.timestamp)))
    business = ET.SubElement(traces, _Q + "Bussiness")
    _add(business, "BussinessDocType", int(packet.business.doc_type))
    _add(business, "BussinessDocReason", packet.business.reason)
    _add(business, "Paper", packet.business.paper)
    _add_staff(business, packet.business.staff)
    if packet.business.replacements:
        replacements = ET.SubElement(business, _Q + "ReplacementInfoList")
        for replacement in packet.business.replacements:
            info = ET.SubElement(replacements, _Q + "ReplacementInfo")
            _add(info, "DocumentId", replacement.document_id)
            organs = ET.SubElement(info, _Q + "OrganIdList")
            for organ_id in replacement.organ_ids:
                _add(organs, "OrganId", organ_id)
    body = ET.SubElement(envelope, _Q + "edXMLBody")
    manifest = ET.SubElement(body, _Q + "edXMLManifest", {"version": "1.0"})
    encoded = ET.SubElement(root, "AttachmentEncoded") if packet.attachments else None
    for attachment in packet.attachments:
        reference = ET.SubElement(manifest, _Q + "Reference")
        _add(reference, "ContentId", f"cid:{attachment.content_id}")
        _add(reference, "ContentType", attachment.content_type)
        _add(reference, "Description", attachment.description)
        _add(reference, "AttachmentName", attachment.name)
        assert encoded is not None
        item = ET.SubElement(encoded, "Attachment")
        ET.SubElement(item, "ContentId").text = f"cid:{attachment.content_id}"
        ET.SubElement(item, "AttachmentName").text = attachment.name
        ET.SubElement(item, "ContentType").text = attachment.content_type
        encoded_bytes = base64.encodebytes(attachment.data).decode("ascii")
        ET.SubElement(item, _Q + "ContentTransferEncoded").text = encoded_bytes
    return _serialise(root)


def write_status(status: StatusPacket) -> bytes:
    """A QCVN 102 status packet: From, ResponseFor, StaffInfo, StatusCode, Description, Timestamp."""
    if not re.fullmatch(r"\d{2}", status.status_code):
        raise ValueError(f"a status code is two digits, got {status.status_code!r}")
    root = ET.Element(_Q + "edXML")
    envelope = ET.SubElement(root, _Q + "edXMLEnvelope")
    header = ET.SubElement(envelope, _Q + "edXMLHeader")
    message = ET.SubElement(header, _Q + "MessageHeader")
    _add_organ(message, "From", status.sender)
    _add_response_for(message, status.response_for)
    _add_staff(message, status.staff)
    _add(message, "StatusCode", status.status_code)
    _add(message, "Description", status.description)
    _add(message, "Timestamp", status.timestamp)
    return _serialise(root)


def document_id(organ_id: str, issued: date, code: Code) -> str:
    """DocumentId as QCVN 102 composes it: `OrganId,yyyy/MM/dd,number/notation`."""
    return f"{organ_id},{_date_text(issued)},{code.full}"


URGENCY_OF_PRIORITY = {0: "thuong", 1: "khan", 2: "thuong_khan", 3: "hoa_toc", 4: "hoa_toc"}
PRIORITY_OF_URGENCY = {"thuong": 0, "khan": 1, "thuong_khan": 2, "hoa_toc": 3}


def urgency_of(priority: int | None) -> str:
    """OtherInfo/Priority → urgency: 0 thường, 1 khẩn, 2 thượng khẩn, 3 and 4 (hỏa tốc hẹn giờ) hỏa tốc."""
    if priority is None:
        return "thuong"
    try:
        return URGENCY_OF_PRIORITY[priority]
    except KeyError:
        _refuse(f"Priority {priority} is not one of 0–4", "OtherInfo.Priority")


# -- a packet as a directive ---------------------------------------------------------------------------

PACKET_FILENAME = "goi-tin-edxml.xml"
PACKET_CONTENT_TYPE = "application/xml"


def metadata_fields(packet: Packet) -> dict[str, object]:
    """The keyword arguments of `new_metadata` that a new-document packet carries; InvalidPacket names the
    part a directive cannot do without."""
    if not packet.sender.name:
        _refuse("From/OrganName (the sending agency's name) is required", "From")
    if packet.promulgation_date is None:
        _refuse("PromulgationInfo/PromulgationDate (the issued date) is required", "PromulgationInfo")
    signer = packet.signer
    return {
        "issuer_name": packet.sender.name,
        "issuer_code": packet.sender.organ_id,
        "number": packet.code.full,
        "issued_date": packet.promulgation_date,
        "subject": packet.subject,
        # The type's numbers vary between vendors; its name, or else the notation, says what it is.
        "document_type": packet.document_type.type_name,
        "place": packet.place,
        "content": packet.content,
        "signer_parts": None if signer is None else (signer.competence, signer.position, signer.full_name),
        "urgency": urgency_of(packet.other.priority),
        "due_date": packet.due_date,
        "page_amount": packet.other.page_amount,
        "to_places": list(packet.to_places),
        "external_id": packet.document_id
        or document_id(packet.sender.organ_id or "", packet.promulgation_date, packet.code),
    }


def _organ_json(organ: Organ) -> dict[str, str]:
    return {key: value for key, value in organ.__dict__.items() if value}


def exchange_record(packet: Packet, signature: dict[str, object]) -> dict[str, object]:
    """What the exchange told us beyond the directive's metadata, kept with the directive as JSON: the
    sender's contact, every recipient, the whole trace with its hops and staff, the other info, links."""
    business = packet.business
    return {
        "source": "edxml",
        "document_id": packet.document_id,
        "from": _organ_json(packet.sender),
        "to": [_organ_json(organ) for organ in packet.recipients],
        "document_type": {
            "type": packet.document_type.type,
            "type_detail": packet.document_type.type_detail,
            "type_name": packet.document_type.type_name,
        },
        "other_info": {
            "priority": packet.other.priority,
            "sphere_of_promulgation": packet.other.sphere_of_promulgation,
            "typer_notation": packet.other.typer_notation,
            "promulgation_amount": packet.other.promulgation_amount,
            "page_amount": packet.other.page_amount,
            "appendixes": list(packet.other.appendixes),
        },
        "steering_type": packet.steering_type,
        "response_for": [
            {
                "organ_id": item.organ_id,
                "code": item.code,
                "promulgation_date": item.promulgation_date.isoformat() if item.promulgation_date else None,
                "document_id": item.document_id,
            }
            for item in packet.response_for
        ],
        "trace": [
            {"organ_id": hop.organ_id, "timestamp": hop.timestamp.isoformat() if hop.timestamp else None}
            for hop in packet.traces
        ],
        "business": {
            "doc_type": int(business.doc_type),
            "reason": business.reason,
            "paper": business.paper,
            "staff": None
            if business.staff is None
            else {k: v for k, v in business.staff.__dict__.items() if v},
        },
        "signature": signature,
    }
