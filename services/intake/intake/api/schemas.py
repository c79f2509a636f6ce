"""HTTP schemas of the intake API (marshmallow): submission bodies, directive resources, register queries."""

from __future__ import annotations

from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate, validates_schema
from shared.query import page_number, page_size

from intake.domain.enums import Confidentiality, DirectiveStatus, Urgency
from intake.domain.models import AGENCY_CODE, MAX_ISSUER_NAME, MAX_SUBJECT
from intake.domain.numbers import MAX_NUMBER_TEXT

# Every free-text field has a length limit, checked by the schema before any rule (or regular expression)
# of the domain sees the text.
MAX_CONTENT = 20_000
MAX_SHORT_TEXT = 200
MAX_TO_PLACES_ITEMS = 200

MAX_PER_PAGE = 100


class _Tolerant(Schema):
    # Senders' extra fields are kept in the raw metadata, not refused: e-office vendors add their own.
    class Meta:
        unknown = EXCLUDE


class IssuerIn(_Tolerant):
    name = fields.String(required=True, validate=validate.Length(min=1, max=MAX_ISSUER_NAME))
    code = fields.String(
        allow_none=True,
        validate=validate.Regexp(AGENCY_CODE, error="must be 1–35 characters of 0-9, A-Z and '.'"),
    )


class SignerIn(_Tolerant):
    competence = fields.String(allow_none=True, validate=validate.Length(max=200))
    position = fields.String(allow_none=True, validate=validate.Length(max=200))
    full_name = fields.String(allow_none=True, validate=validate.Length(max=200))


class DirectiveMetadataIn(_Tolerant):
    """The metadata of a submission (the `metadata` part of a multipart body, or the JSON body itself)."""

    issuer = fields.Nested(IssuerIn, required=True)
    number = fields.String(
        required=True,
        validate=validate.Length(min=1, max=MAX_NUMBER_TEXT),
        metadata={"description": "state form `1393/CVT-CL` or Party form `171-CV/BTGTU`"},
    )
    document_type = fields.String(
        allow_none=True,
        validate=validate.Length(max=100),
        metadata={"description": "type name (Kế hoạch) or NĐ 30 abbreviation (KH)"},
    )
    issued_date = fields.Date(required=True)
    place = fields.String(allow_none=True, validate=validate.Length(max=200))
    subject = fields.String(required=True, validate=validate.Length(min=1, max=MAX_SUBJECT))
    content = fields.String(allow_none=True, validate=validate.Length(max=MAX_CONTENT))
    signer = fields.Nested(SignerIn, allow_none=True)
    urgency = fields.String(
        load_default=Urgency.THUONG.value,
        validate=[validate.Length(max=50), validate.OneOf([u.value for u in Urgency])],
    )
    # Any string is let through here so the domain can refuse state secrets with its own explanation.
    confidentiality = fields.String(
        load_default=Confidentiality.THUONG.value,
        validate=validate.Length(max=50),
        metadata={"enum": [c.value for c in Confidentiality], "description": "only `thuong` is accepted"},
    )
    due_date = fields.Date(allow_none=True)
    page_amount = fields.Integer(allow_none=True, strict=True, validate=validate.Range(min=1, max=100000))
    to_places = fields.List(
        fields.String(validate=validate.Length(max=1000)),
        load_default=list,
        validate=validate.Length(max=MAX_TO_PLACES_ITEMS),
    )
    external_id = fields.String(allow_none=True, validate=validate.Length(max=MAX_SHORT_TEXT))


class AttachmentIn(Schema):
    filename = fields.String(required=True, validate=validate.Length(min=1, max=1000))
    content_type = fields.String(
        required=True,
        validate=validate.Length(min=1, max=100),
        metadata={"description": "media type from the accepted list (PDF, office documents, images...)"},
    )
    content_base64 = fields.String(required=True)


class DirectiveJsonIn(DirectiveMetadataIn):
    """application/json submission: the metadata plus base64 attachments."""

    attachments = fields.List(fields.Nested(AttachmentIn), load_default=list)


class DirectiveMultipartIn(Schema):
    """multipart/form-data submission (documentation only; the view parses the parts itself)."""

    metadata = fields.String(required=True, metadata={"description": "JSON of DirectiveMetadataIn"})
    files = fields.List(fields.Raw(metadata={"type": "string", "format": "binary"}))


class IssuerOut(Schema):
    name = fields.String()
    code = fields.String(allow_none=True)


class SignerOut(Schema):
    competence = fields.String(allow_none=True)
    position = fields.String(allow_none=True)
    full_name = fields.String(allow_none=True)


class AttachmentOut(Schema):
    id = fields.String()
    filename = fields.String()
    content_type = fields.String()
    size = fields.Integer()
    sha256 = fields.String()
    url = fields.String()


class DirectiveLinkOut(Schema):
    id = fields.String()
    url = fields.String()


class DirectiveOut(Schema):
    id = fields.String()
    status = fields.String()
    organisation = fields.String()
    arrival_number = fields.Integer()
    arrival_date = fields.Date()
    received_at = fields.AwareDateTime()
    issuer = fields.Nested(IssuerOut)
    number = fields.String()
    code_number = fields.String()
    code_notation = fields.String()
    document_type = fields.String()
    issued_date = fields.Date()
    place = fields.String(allow_none=True)
    subject = fields.String()
    content = fields.String(allow_none=True, validate=validate.Length(max=MAX_CONTENT))
    signer = fields.Nested(SignerOut, allow_none=True)
    urgency = fields.String()
    confidentiality = fields.String()
    due_date = fields.Date(allow_none=True)
    page_amount = fields.Integer(allow_none=True)
    to_places = fields.List(fields.String())
    external_id = fields.String(allow_none=True)
    attachments = fields.List(fields.Nested(AttachmentOut))
    url = fields.String()
    exchange = fields.Dict(
        allow_none=True,
        metadata={
            "description": "for a directive that came as an edXML packet: the sender and recipients, the "
            "trace, the other info and links, and the XML signature's verdict (`signature: {status: valid | "
            "invalid | absent, subject, trusted, detail}`)"
        },
    )
    revision = fields.Integer(
        metadata={"description": "1 when registered, one more per update (GET …/revisions lists them)"}
    )
    replaces = fields.Nested(
        DirectiveLinkOut, allow_none=True, metadata={"description": "the directive this one replaced"}
    )
    replaced_by = fields.Nested(
        DirectiveLinkOut,
        allow_none=True,
        metadata={"description": "the directive that replaced this one (its status is then `replaced`)"},
    )


class DirectivePageOut(Schema):
    items = fields.List(fields.Nested(DirectiveOut))
    total = fields.Integer()
    page = fields.Integer()
    per_page = fields.Integer()


class RegisterQueryIn(Schema):
    class Meta:
        unknown = EXCLUDE

    issuer = fields.String(validate=validate.Length(min=1, max=200))
    number = fields.String(
        validate=validate.Length(min=1, max=60), metadata={"description": "`1393/CVT-CL` or just `1393`"}
    )
    document_type = fields.String(validate=validate.Length(min=1, max=100))
    arrival_from = fields.Date()
    arrival_to = fields.Date()
    q = fields.String(validate=validate.Length(min=1, max=200), metadata={"description": "subject words"})
    urgency = fields.String(validate=validate.OneOf([u.value for u in Urgency]))
    status = fields.String(validate=validate.OneOf([s.value for s in DirectiveStatus]))
    due_from = fields.Date(metadata={"description": "due date on or after this day"})
    due_to = fields.Date(metadata={"description": "due date on or before this day"})
    unfinished = fields.Boolean(
        metadata={
            "description": "true: only directives still registered and not yet done (no status 06 hoàn "
            "thành); with `due_to` yesterday, the overdue ones"
        }
    )
    page = page_number()
    per_page = page_size(20, MAX_PER_PAGE)

    @validates_schema
    def _range(self, data: dict[str, Any], **_: Any) -> None:
        for start_name, end_name in (("arrival_from", "arrival_to"), ("due_from", "due_to")):
            start, end = data.get(start_name), data.get(end_name)
            if start is not None and end is not None and start > end:
                raise ValidationError(f"must not be after {end_name}", field_name=start_name)


class RegisterExportIn(Schema):
    class Meta:
        unknown = EXCLUDE

    year = fields.Integer(validate=validate.Range(min=1900, max=9999))
