"""HTTP schemas of the archive API (marshmallow): query filters, request bodies and responses."""

from __future__ import annotations

from marshmallow import EXCLUDE, Schema, fields, validate
from shared.query import SafeAwareDateTime, page_number, page_size

MAX_PER_PAGE = 200


class _Query(Schema):
    class Meta:
        unknown = EXCLUDE


class PageQuery(_Query):
    page = page_number()
    per_page = page_size(50, MAX_PER_PAGE)


class RecordQuery(PageQuery):
    directive = fields.String()
    issuer = fields.String()
    number = fields.String()
    date_from = fields.Date()
    date_to = fields.Date()
    signature_status = fields.String(validate=validate.OneOf(["valid", "invalid", "untrusted", "unsigned"]))
    q = fields.String(validate=validate.Length(min=1, max=200))


class AuditQuery(PageQuery):
    directive = fields.String()
    actor = fields.String()
    since = SafeAwareDateTime()
    until = SafeAwareDateTime()


def _page_of(item: type[Schema], name: str) -> type[Schema]:
    """The schema `name` of a page of `item`s: items, total, page, per_page (in that order)."""
    page = {
        "items": fields.List(fields.Nested(item)),
        "total": fields.Integer(),
        "page": fields.Integer(),
        "per_page": fields.Integer(),
    }
    return Schema.from_dict(page, name=name)


class SignatureOut(Schema):
    field_name = fields.String()
    signer = fields.String(allow_none=True)
    signing_time = fields.String(allow_none=True)
    intact = fields.Boolean()
    valid = fields.Boolean()
    trusted = fields.Boolean()
    covers_whole_file = fields.Boolean()
    modification_ok = fields.Boolean()
    problems = fields.List(fields.String())


class SignatureReportOut(Schema):
    bottom_line = fields.String()
    checked_at = fields.String()
    is_pdf = fields.Boolean()
    note = fields.String(allow_none=True)
    signatures = fields.List(fields.Nested(SignatureOut))


class RecordOut(Schema):
    id = fields.String()
    directive_id = fields.String()
    source_event_id = fields.String()
    source_kind = fields.String()
    filename = fields.String()
    content_type = fields.String()
    size = fields.Integer()
    sha256 = fields.String()
    bucket = fields.String()
    key = fields.String()
    version_id = fields.String(allow_none=True)
    retention_class = fields.String()
    retain_until = fields.AwareDateTime()
    lock_mode = fields.String()
    legal_hold = fields.Boolean()
    legal_hold_reason = fields.String(allow_none=True)
    signature_status = fields.String()
    signature_report = fields.Nested(SignatureReportOut)
    archived_at = fields.AwareDateTime()
    fixity_status = fields.String()
    fixity_checked_at = fields.AwareDateTime(allow_none=True)
    fixity_detail = fields.String(allow_none=True)
    content_flags = fields.List(
        fields.String(validate=validate.OneOf(["javascript", "embedded_files", "launch_action"])),
        metadata={"description": "Active content found in the PDF when it was archived; empty when none"},
    )
    issuer_name = fields.String(allow_none=True)
    issuer_code = fields.String(allow_none=True)
    number = fields.String(allow_none=True)
    document_type = fields.String(allow_none=True)
    issued_date = fields.Date(allow_none=True)
    subject = fields.String(allow_none=True)


RecordPage = _page_of(RecordOut, "RecordPage")


class LegalHoldIn(Schema):
    legal_hold = fields.Boolean(required=True)
    reason = fields.String(required=True, validate=validate.Length(min=1, max=2000))


class FixityOut(Schema):
    record_id = fields.String()
    ok = fields.Boolean()
    actual_sha256 = fields.String(allow_none=True)
    detail = fields.String()


class FixityRunOut(Schema):
    id = fields.Integer()
    trigger = fields.String()
    actor = fields.String()
    started_at = fields.AwareDateTime()
    finished_at = fields.AwareDateTime(allow_none=True)
    checked = fields.Integer()
    failed = fields.Integer()
    failures = fields.List(fields.Dict())


FixityRunPage = _page_of(FixityRunOut, "FixityRunPage")


class AuditEntryOut(Schema):
    seq = fields.Integer()
    action = fields.String()
    actor = fields.String()
    occurred_at = fields.AwareDateTime()
    directive_id = fields.String(allow_none=True)
    record_id = fields.String(allow_none=True)
    source_event_id = fields.String(allow_none=True)
    details = fields.Dict()
    prev_hash = fields.String()
    hash = fields.String()


AuditPage = _page_of(AuditEntryOut, "AuditPage")


class CheckpointOut(Schema):
    key = fields.String(allow_none=True)
    count = fields.Integer()
    head_hash = fields.String()
    created_at = fields.AwareDateTime()
    ok = fields.Boolean()
    problem = fields.String(allow_none=True)


class AuditVerifyOut(Schema):
    ok = fields.Boolean()
    count = fields.Integer()
    head_hash = fields.String()
    broken_seq = fields.Integer(allow_none=True)
    reason = fields.String(allow_none=True)
    checkpoint = fields.Nested(CheckpointOut, allow_none=True)
    checkpoints_checked = fields.Integer(
        metadata={"description": "Checkpoint objects listed and read from the object-locked bucket"}
    )
    problems = fields.List(
        fields.String(),
        metadata={
            "description": "Every disagreement between the chain, the locked checkpoints and their rows"
        },
    )
    unindexed = fields.List(
        fields.String(),
        metadata={
            "description": "Keys of locked checkpoints that agree with the chain but have no row yet (being "
            "written, or left by a stopped worker, which indexes them when it starts): not tampering"
        },
    )
