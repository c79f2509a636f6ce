"""Blueprint /v1/edxml and a directive's packets: docroute as a peer of the national document exchange.

A QCVN 102 packet registers a directive exactly as POST /v1/directives does (the same handler, the same
201 resource); the packet's own bytes are kept byte-exact beside its attachments (and so staged, archived
WORM and packed into the BagIt package like them), and any directive can be written back out as a strict
packet.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Response, current_app, g, request
from flask_smorest import Blueprint
from shared.auth import current_principal, require_roles
from shared.problems import Problem

from intake.adapters.xml_signature import check_signature
from intake.api.deps import Deps
from intake.api.resources import directive_resource, directive_url
from intake.api.schemas import DirectiveOut
from intake.domain import edxml
from intake.domain.errors import (
    AttachmentTooLarge,
    DuplicateDirective,
    IdempotencyConflict,
    IntakeError,
    InvalidAttachment,
    InvalidMetadata,
)
from intake.domain.models import Directive, Signer, new_metadata
from intake.domain.status import composed_document_id
from intake.handlers import Submission, Upload, get_directive, open_attachment, register_directive
from intake.lifecycle import Changes, Evidence, replace_directives, revoke_directive, update_directive
from intake.status import original_of, packet_refusal_reason, record_packet_refusal

blp = Blueprint("edxml", __name__, url_prefix="/v1", description="edXML packets (QCVN 102:2016/BTTTT)")

XML_TYPES = frozenset({"application/xml", "text/xml", "application/edxml+xml"})
READERS = ("clerk", "submitter", "auditor", "admin")
REGISTER_ROLES = ("clerk", "auditor", "admin")
_R = TypeVar("_R")
_XML_BODY = {"schema": {"type": "string", "description": "an edXML packet"}}


def _deps() -> Deps:
    deps: Deps = current_app.extensions["intake"]
    return deps


def _packet_body() -> bytes:
    """The packet: the whole body for an XML type, or the `packet` part of a multipart form (kept in
    `g.edxml_packet` for tells_sender_when_refused)."""
    mimetype = request.mimetype or ""
    body: bytes | None = None
    if mimetype in XML_TYPES:
        body = request.get_data(cache=False)
    elif mimetype == "multipart/form-data":
        part = request.files.get("packet")
        text = request.form.get("packet")
        if part is not None:
            body = part.read()
        elif text:
            body = text.encode("utf-8")
    if body is not None:
        g.edxml_packet = body
        return body
    if mimetype == "multipart/form-data":
        raise Problem(
            422, "Invalid edXML packet", "a `packet` part is required", errors={"packet": ["missing"]}
        )
    raise Problem(
        415,
        "Unsupported media type",
        f"send the packet as {', '.join(sorted(XML_TYPES))} or a `packet` part of multipart/form-data",
    )


def _read(body: bytes) -> edxml.Packet:
    settings = _deps().settings
    return edxml.read_packet(
        body,
        limits=edxml.Limits(
            max_attachment_bytes=settings.max_upload_bytes, max_total_bytes=settings.max_request_bytes
        ),
    )


# Refusals of a packet that its sender is told of (02), when the packet names its sender and document.
SENDER_REFUSALS: tuple[type[IntakeError], ...] = (
    edxml.InvalidPacket,
    InvalidMetadata,
    InvalidAttachment,
    AttachmentTooLarge,
)


def tells_sender_when_refused(view: Callable[[], _R]) -> Callable[[], _R]:
    """A new-document packet refused for what it is (not for the state of intake) still reaches its
    sender as status 02 with the reason, when From/OrganId and DocumentId can be read from it."""

    @functools.wraps(view)
    def wrapper() -> _R:
        try:
            return view()
        except SENDER_REFUSALS as exc:
            _tell_sender(g.get("edxml_packet"), exc)
            raise

    return wrapper


def _tell_sender(body: bytes | None, exc: IntakeError) -> None:
    attribution = edxml.attribute(body) if body else None
    if attribution is None or attribution.doc_type not in (edxml.BusinessDocType.NEW, None):
        return
    deps = _deps()
    if deps.repository.find_by_external_id(attribution.organ_id, attribution.document_id) is not None:
        # The document was received and registered before (its sender has 01 and 03): a broken copy sent
        # again does not make it refused.
        return
    record_packet_refusal(
        deps.engine,
        attribution,
        packet_refusal_reason(exc),
        department=deps.department,
        submitted_by=current_principal().sub,
        clock=deps.clock,
    )


def _submission(body: bytes, packet: edxml.Packet, submitted_by: str) -> Submission:
    settings = _deps().settings
    signature = check_signature(body, trust_store=settings.trust_store)
    if settings.require_packet_signature and signature.status != "valid":
        raise edxml.InvalidPacket(f"the packet's XML signature is {signature.status}", field="Signature")
    fields = edxml.metadata_fields(packet)
    parts = fields.pop("signer_parts")
    metadata = new_metadata(
        **fields,  # type: ignore[arg-type]
        signer=None if parts is None else Signer(*parts),  # type: ignore[misc]
    )
    raw = {
        "issuer": {"name": metadata.issuer.name, "code": metadata.issuer.code},
        "number": metadata.number.display,
        "subject": metadata.subject,
        "exchange": edxml.exchange_record(packet, signature.as_json()),
    }
    uploads = [
        Upload(
            field=f"attachments[{index}]", filename=item.name, content_type=item.content_type, data=item.data
        )
        for index, item in enumerate(packet.attachments)
    ]
    uploads.append(
        Upload(
            field="packet", filename=edxml.PACKET_FILENAME, content_type=edxml.PACKET_CONTENT_TYPE, data=body
        )
    )
    # The exchange's natural key: the sender's identifier and its DocumentId. The same packet again replays
    # the first answer; the same DocumentId with other content is refused.
    key = f"edxml:{packet.sender.organ_id or ''}:{metadata.external_id}"
    return Submission(
        metadata=metadata,
        raw_metadata=json.dumps(raw, ensure_ascii=False, sort_keys=True),
        uploads=tuple(uploads),
        submitted_by=submitted_by,
        idempotency_key=key[:255],
    )


@blp.route("/edxml", methods=["POST"])
@require_roles("submitter", "clerk")
@blp.doc(
    requestBody={
        "required": True,
        "content": {
            "application/xml": _XML_BODY,
            "text/xml": _XML_BODY,
            "application/edxml+xml": _XML_BODY,
            "multipart/form-data": {
                "schema": {"type": "object", "properties": {"packet": {"type": "string", "format": "binary"}}}
            },
        },
    }
)
@blp.response(201, DirectiveOut, description="Registered (or the first answer again for the same packet)")
@blp.alt_response(
    200,
    schema=DirectiveOut,
    description="A revocation (1) or update (2) packet: the directive it revoked or updated",
)
@blp.alt_response(400, description="An undeclared query parameter, or JSON text that cannot be stored")
@blp.alt_response(
    404,
    description="A revocation, update or replacement packet names a document never received from its sender",
)
@blp.alt_response(
    409,
    description="The DocumentId was received before with other content, or a duplicate; an update or "
    "replacement of a revoked, refused or replaced directive",
)
@blp.alt_response(413, description="The packet or one of its files is over the size limit")
@blp.alt_response(415, description="Not an XML body or a multipart form with a `packet` part")
@blp.alt_response(422, description="Not a packet docroute can take: the problem names the part")
@blp.alt_response(503, description="Object store or database unavailable; see Retry-After")
@tells_sender_when_refused
def receive_packet() -> tuple[dict[str, Any], int, dict[str, str]] | tuple[dict[str, Any], dict[str, str]]:
    """Register a directive from an edXML packet (BussinessDocType 0) with its attachments; revoke (1) or
    update (2) the directive the packet names by From/OrganId and DocumentId; or register a replacement
    (3) and mark each directive its ReplacementInfoList names `replaced`."""
    deps = _deps()
    body = _packet_body()
    packet = _read(body)
    if packet.business.doc_type is edxml.BusinessDocType.REVOCATION:
        return _revoke(packet, body)
    if packet.business.doc_type is edxml.BusinessDocType.UPDATE:
        return _update(packet, body)
    submission = _submission(body, packet, current_principal().sub)
    try:
        if packet.business.doc_type is edxml.BusinessDocType.REPLACEMENT:
            return _replace(packet, submission)
        registration = register_directive(
            submission,
            repository=deps.repository,
            staging=deps.staging,
            organisation=deps.settings.organisation,
            max_upload_bytes=deps.settings.max_upload_bytes,
            clock=deps.clock,
            department=deps.department,
        )
    except IdempotencyConflict:
        document_id = submission.metadata.external_id
        raise Problem(
            409,
            "DocumentId already received",
            f"DocumentId {document_id} was received before with other content",
            type="edxml-document-conflict",
            errors={"DocumentId": [f"{document_id} was received before with other content"]},
        ) from None
    except DuplicateDirective as exc:
        raise Problem(409, "Directive already registered", str(exc), type="duplicate-directive") from None
    headers = {"Location": directive_url(registration.directive.id)}
    if not registration.created:
        headers["Idempotent-Replayed"] = "true"
    return directive_resource(registration.directive), headers


REVOCATION_FILENAME = "thu-hoi-edxml.xml"
UPDATE_FILENAME = "cap-nhat-edxml.xml"
LIFECYCLE_PACKETS = frozenset({edxml.PACKET_FILENAME, REVOCATION_FILENAME, UPDATE_FILENAME})


def _document_id(packet: edxml.Packet) -> str | None:
    """The packet's DocumentId, or the one a registration composed for a packet that carried none."""
    if packet.document_id or packet.promulgation_date is None:
        return packet.document_id
    return edxml.document_id(packet.sender.organ_id or "", packet.promulgation_date, packet.code)


def _named(organ_id: str | None, document_id: str | None, what: str) -> Directive:
    """The directive a lifecycle packet names by the sender's identifier and a DocumentId; 404 if none."""
    if not organ_id or not document_id:
        raise edxml.InvalidPacket(
            f"{what} names its document by From/OrganId and DocumentId", field="DocumentId"
        )
    target = _deps().repository.find_by_external_id(organ_id, document_id)
    if target is None:
        raise Problem(
            404,
            "No such document",
            f"no directive from {organ_id} with DocumentId {document_id}",
            type="directive-not-found",
            errors={"DocumentId": [f"{document_id} was never received from {organ_id}"]},
        )
    return target


def _revoke(packet: edxml.Packet, body: bytes) -> tuple[dict[str, Any], int, dict[str, str]]:
    """A revocation packet names its document by the sender's identifier and DocumentId."""
    deps = _deps()
    target = _named(packet.sender.organ_id, _document_id(packet), "a revocation")
    done = revoke_directive(
        target.id,
        reason=packet.business.reason or "Thu hồi văn bản theo gói tin edXML",
        actor=f"edxml:{packet.sender.organ_id}",
        repository=deps.repository,
        staging=deps.staging,
        clock=deps.clock,
        department=deps.department,
        evidence=Evidence(REVOCATION_FILENAME, edxml.PACKET_CONTENT_TYPE, body),
    )
    return directive_resource(done.directive), 200, {"Location": directive_url(done.directive.id)}


def _update(packet: edxml.Packet, body: bytes) -> tuple[dict[str, Any], int, dict[str, str]]:
    """An update packet names its document as a revocation does and carries the document as it is now:
    the parts an update may change (Subject, Content, DueDate, OtherInfo/Priority) that differ, and files it
    does not have yet, make its next revision; the packet is kept with it."""
    deps = _deps()
    target = _named(packet.sender.organ_id, _document_id(packet), "an update")
    values: dict[str, Any] = {}
    if packet.subject:
        values["subject"] = packet.subject
    if packet.content is not None:
        values["content"] = packet.content
    if packet.due_date is not None:
        values["due_date"] = packet.due_date
    if packet.other.priority is not None:
        values["urgency"] = edxml.urgency_of(packet.other.priority)
    uploads = tuple(
        Upload(
            field=f"attachments[{index}]", filename=item.name, content_type=item.content_type, data=item.data
        )
        for index, item in enumerate(packet.attachments)
    )
    done = update_directive(
        target.id,
        Changes(values=values, uploads=uploads),
        reason=packet.business.reason,
        actor=f"edxml:{packet.sender.organ_id}",
        repository=deps.repository,
        staging=deps.staging,
        clock=deps.clock,
        max_upload_bytes=deps.settings.max_upload_bytes,
        department=deps.department,
        evidence=Evidence(UPDATE_FILENAME, edxml.PACKET_CONTENT_TYPE, body),
    )
    return directive_resource(done.directive), 200, {"Location": directive_url(done.directive.id)}


def _replace(packet: edxml.Packet, submission: Submission) -> tuple[dict[str, Any], int, dict[str, str]]:
    """A replacement packet is a new document whose ReplacementInfoList names the documents it replaces
    (by DocumentId, from the same sender): it is registered as any new document, and each is `replaced`."""
    deps = _deps()
    if not packet.business.replacements:
        raise edxml.InvalidPacket(
            "a replacement (BussinessDocType 3) names what it replaces in "
            "ReplacementInfoList/ReplacementInfo",
            field="ReplacementInfoList",
        )
    targets = [
        _named(packet.sender.organ_id, info.document_id, "a replacement").id
        for info in packet.business.replacements
    ]
    done = replace_directives(
        targets,
        submission,
        reason=packet.business.reason,
        actor=f"edxml:{packet.sender.organ_id}",
        repository=deps.repository,
        staging=deps.staging,
        organisation=deps.settings.organisation,
        max_upload_bytes=deps.settings.max_upload_bytes,
        clock=deps.clock,
        department=deps.department,
    )
    headers = {"Location": directive_url(done.directive.id)}
    if not done.created:
        headers["Idempotent-Replayed"] = "true"
    return directive_resource(done.directive), 201, headers


def _readable(directive_id: str) -> Directive:
    principal = current_principal()
    only = None if principal.has_any(*REGISTER_ROLES) else principal.sub
    return get_directive(directive_id, repository=_deps().repository, only_submitted_by=only)


@blp.route("/directives/<string:directive_id>/packet", methods=["GET"])
@require_roles(*READERS)
@blp.response(
    200,
    _XML_BODY["schema"],
    description="The edXML packet exactly as it was received",
    content_type="application/xml",
)
@blp.alt_response(400, description="An undeclared query parameter")
@blp.alt_response(404, description="No such directive, or it did not arrive as an edXML packet")
@blp.alt_response(503, description="Object store or database unavailable; see Retry-After")
def get_packet(directive_id: str) -> Response:
    """The packet a directive arrived in, byte for byte."""
    directive = _readable(directive_id)
    found = next(
        (
            a
            for a in directive.attachments
            if a.filename == edxml.PACKET_FILENAME and a.content_type == edxml.PACKET_CONTENT_TYPE
        ),
        None,
    )
    if (
        found is None
        or json.loads(directive.raw_metadata or "{}").get("exchange", {}).get("source") != "edxml"
    ):
        raise Problem(
            404,
            "No packet",
            f"directive {directive_id} did not arrive as an edXML packet",
            type="packet-not-found",
        )
    deps = _deps()
    _, stream = open_attachment(directive.id, found.id, repository=deps.repository, staging=deps.staging)
    with stream as chunks:
        data = b"".join(chunks)
    return Response(data, content_type="application/xml; charset=utf-8")


def packet_of(
    directive: Directive, files: list[tuple[str, str, bytes]], *, fallback_organ_id: str
) -> edxml.Packet:
    """The directive as a new-document packet: the strict form other e-office systems read (DocumentId as
    its statuses name it: `fallback_organ_id`, the department's, stands in for an issuer without one)."""
    meta = directive.metadata
    number = meta.number
    code = edxml.Code(number=number.code_number, notation=number.code_notation)
    signer = meta.signer
    return edxml.Packet(
        sender=edxml.Organ(organ_id=meta.issuer.code, name=meta.issuer.name),
        code=code,
        subject=meta.subject,
        place=meta.place,
        promulgation_date=meta.issued_date,
        document_type=edxml.DocumentTypeInfo(type_name=meta.document_type),
        content=meta.content,
        signer=None
        if signer is None
        else edxml.SignerInfo(signer.competence, signer.position, signer.full_name),
        due_date=meta.due_date,
        to_places=meta.to_places,
        other=edxml.OtherInfo(
            priority=edxml.PRIORITY_OF_URGENCY[meta.urgency.value], page_amount=meta.page_amount
        ),
        steering_type=1,
        document_id=composed_document_id(original_of(directive), fallback_organ_id=fallback_organ_id),
        attachments=tuple(
            edxml.Attachment(content_id=f"{index + 1}", name=name, content_type=kind, data=data)
            for index, (name, kind, data) in enumerate(files)
        ),
    )


@blp.route("/directives/<string:directive_id>/edxml", methods=["GET"])
@require_roles(*READERS)
@blp.response(
    200,
    _XML_BODY["schema"],
    description="The directive as a strict QCVN 102 packet",
    content_type="application/xml",
)
@blp.alt_response(400, description="An undeclared query parameter")
@blp.alt_response(404, description="No such directive")
@blp.alt_response(503, description="Object store or database unavailable; see Retry-After")
def get_edxml(directive_id: str) -> Response:
    """The directive written as an edXML packet, parts in the standard's order, with its files."""
    directive = _readable(directive_id)
    deps = _deps()
    files: list[tuple[str, str, bytes]] = []
    for attachment in directive.attachments:
        if attachment.filename in LIFECYCLE_PACKETS and attachment.content_type == edxml.PACKET_CONTENT_TYPE:
            continue  # the packets it arrived, was revoked or updated in are not among its files
        _, stream = open_attachment(
            directive.id, attachment.id, repository=deps.repository, staging=deps.staging
        )
        with stream as chunks:
            files.append((attachment.filename, attachment.content_type, b"".join(chunks)))
    return Response(
        edxml.write_packet(packet_of(directive, files, fallback_organ_id=deps.department.organ_id)),
        content_type="application/xml; charset=utf-8",
    )
