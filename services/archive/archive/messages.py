"""Wire schemas: the events archive reads (tolerant) and the events it emits (strict), plus their names."""

from __future__ import annotations

from typing import Any

from marshmallow import EXCLUDE, RAISE, Schema, ValidationError, fields, validate
from shared.envelope import Envelope
from shared.naming import events_exchange, queue_name, routing_key

SERVICE = "archive"
EXCHANGE = events_exchange(SERVICE)

RECORD_ARCHIVED = "record_archived"
SIGNATURE_INVALID = "signature_invalid"
FIXITY_FAILED = "fixity_failed"
AUDIT_CHAIN_BROKEN = "audit_chain_broken"

# What archive consumes: (source service, event name) -> its queue.
DIRECTIVE_REGISTERED = ("intake", "directive_registered")
TASK_ASSIGNED = ("routing", "task_assigned")
# Routing's one event for all the tasks a directive was routed to (or a clerk added at once).
TASKS_ASSIGNED = ("routing", "tasks_assigned")
TASK_STATUS_CHANGED = ("routing", "task_status_changed")
# Routing's one event per acknowledgement (of one task or a batch): every status change it made.
TASKS_ACKNOWLEDGED = ("routing", "tasks_acknowledged")
TASK_OVERDUE = ("routing", "task_overdue")
# A directive revoked by its sender or a clerk: kept in its history; its records stay as they are (WORM).
DIRECTIVE_REVOKED = ("intake", "directive_revoked")
# A directive's next revision (its files added and the update packet archived) and its replacement.
DIRECTIVE_UPDATED = ("intake", "directive_updated")
DIRECTIVE_REPLACED = ("intake", "directive_replaced")
CONSUMED = (
    DIRECTIVE_REGISTERED,
    DIRECTIVE_REVOKED,
    DIRECTIVE_UPDATED,
    DIRECTIVE_REPLACED,
    TASK_ASSIGNED,
    TASKS_ASSIGNED,
    TASK_STATUS_CHANGED,
    TASKS_ACKNOWLEDGED,
    TASK_OVERDUE,
)


def consumer_queue(source: str, event: str) -> str:
    return queue_name(SERVICE, source, event)


def source_routing_key(source: str, event: str, version: int = 1) -> str:
    return routing_key(source, event, version)


_SHA256 = validate.Regexp(r"^[0-9a-f]{64}$")


class _Tolerant(Schema):
    class Meta:
        unknown = EXCLUDE


class _Strict(Schema):
    class Meta:
        unknown = RAISE


# --- read -----------------------------------------------------------------------------------------


class AttachmentIn(_Tolerant):
    id = fields.String(required=True)
    filename = fields.String(required=True)
    content_type = fields.String(load_default="application/octet-stream")
    size = fields.Integer(required=True, validate=validate.Range(min=0))
    sha256 = fields.String(required=True, validate=_SHA256)
    bucket = fields.String(required=True)
    key = fields.String(required=True)


class DirectiveRegisteredIn(_Tolerant):
    directive_id = fields.String(required=True)
    arrival_number = fields.Integer(load_default=None)
    arrival_date = fields.String(load_default=None)
    received_at = fields.String(load_default=None)
    # Kept as sent (a dict): the archive stores the metadata for the package without reinterpreting it.
    metadata = fields.Dict(load_default=dict)
    attachments = fields.List(fields.Nested(AttachmentIn), load_default=list)


class ReportIn(_Tolerant):
    bucket = fields.String(required=True)
    key = fields.String(required=True)
    sha256 = fields.String(required=True, validate=_SHA256)
    size = fields.Integer(required=True, validate=validate.Range(min=0))
    filename = fields.String(load_default="report")
    content_type = fields.String(load_default="application/octet-stream")


class DirectiveRevokedIn(_Tolerant):
    directive_id = fields.String(required=True)
    reason = fields.String(required=True)
    revoked_at = fields.String(load_default=None, allow_none=True)
    revoked_by = fields.String(load_default=None, allow_none=True)
    packet = fields.Nested(ReportIn, load_default=None, allow_none=True)


class AddedFileIn(ReportIn):
    id = fields.String(required=True)


class DirectiveUpdatedIn(_Tolerant):
    directive_id = fields.String(required=True)
    revision = fields.Integer(required=True)
    changes = fields.Dict(required=True)
    attachments_added = fields.List(fields.Nested(AddedFileIn), load_default=list)
    reason = fields.String(load_default=None, allow_none=True)
    updated_at = fields.String(load_default=None, allow_none=True)
    updated_by = fields.String(load_default=None, allow_none=True)
    packet = fields.Nested(ReportIn, load_default=None, allow_none=True)


class ReplacementIn(_Tolerant):
    directive_id = fields.String(required=True)
    number = fields.String(load_default=None, allow_none=True)
    arrival_number = fields.Integer(load_default=None, allow_none=True)


class DirectiveReplacedIn(_Tolerant):
    directive_id = fields.String(required=True)
    replacement = fields.Nested(ReplacementIn, required=True)
    reason = fields.String(required=True)
    replaced_at = fields.String(load_default=None, allow_none=True)
    replaced_by = fields.String(load_default=None, allow_none=True)


class TaskEventIn(_Tolerant):
    directive_id = fields.String(required=True)
    task_id = fields.String(load_default=None, allow_none=True)
    # task_assigned / task_overdue carry the task document itself, whose id is the task id.
    id = fields.String(load_default=None, allow_none=True)
    unit = fields.String(load_default=None, allow_none=True)
    unit_code = fields.String(load_default=None, allow_none=True)
    status = fields.String(load_default=None, allow_none=True)
    to_status = fields.String(load_default=None, allow_none=True)
    report = fields.Nested(ReportIn, load_default=None, allow_none=True)


class AssignedTaskIn(_Tolerant):
    id = fields.String(required=True)
    unit = fields.String(load_default=None, allow_none=True)
    status = fields.String(load_default=None, allow_none=True)


class TasksAssignedIn(_Tolerant):
    directive_id = fields.String(required=True)
    tasks = fields.List(fields.Dict(), required=True, validate=validate.Length(min=1))


class StatusChangeIn(_Tolerant):
    task_id = fields.String(required=True)
    directive_id = fields.String(required=True)
    unit = fields.String(load_default=None, allow_none=True)
    status = fields.String(required=True)


class TasksAcknowledgedIn(_Tolerant):
    changes = fields.List(fields.Dict(), required=True, validate=validate.Length(min=1))


def load_payload(schema: Schema, envelope: Envelope) -> dict[str, Any]:
    """Validated payload; ValidationError is the caller's cue to dead-letter the message."""
    data = schema.load(envelope.payload)
    if not isinstance(data, dict):
        raise ValidationError("payload must be an object")
    return data


# --- emitted ---------------------------------------------------------------------------------------


class RecordArchivedOut(_Strict):
    record_id = fields.String(required=True)
    directive_id = fields.String(required=True)
    source_event_id = fields.String(required=True)
    source_kind = fields.String(
        required=True, validate=validate.OneOf(["attachment", "report", "revocation", "update"])
    )
    filename = fields.String(required=True)
    content_type = fields.String(required=True)
    size = fields.Integer(required=True)
    sha256 = fields.String(required=True, validate=_SHA256)
    bucket = fields.String(required=True)
    key = fields.String(required=True)
    version_id = fields.String(required=True, allow_none=True)
    retention_class = fields.String(required=True)
    retain_until = fields.String(required=True)
    lock_mode = fields.String(required=True, validate=validate.OneOf(["GOVERNANCE", "COMPLIANCE"]))
    legal_hold = fields.Boolean(required=True)
    signature_status = fields.String(
        required=True, validate=validate.OneOf(["valid", "invalid", "untrusted", "unsigned"])
    )


class SignatureInvalidOut(_Strict):
    record_id = fields.String(required=True)
    directive_id = fields.String(required=True)
    filename = fields.String(required=True)
    sha256 = fields.String(required=True, validate=_SHA256)
    bottom_line = fields.String(required=True)
    signatures = fields.List(fields.Dict(), required=True)


class FixityFailedOut(_Strict):
    record_id = fields.String(required=True)
    directive_id = fields.String(required=True)
    bucket = fields.String(required=True)
    key = fields.String(required=True)
    expected_sha256 = fields.String(required=True, validate=_SHA256)
    actual_sha256 = fields.String(required=True, allow_none=True)
    detail = fields.String(required=True)
    detected_at = fields.String(required=True)
    trigger = fields.String(required=True)


class AuditChainBrokenOut(_Strict):
    count = fields.Integer(required=True)
    head_hash = fields.String(required=True)
    broken_seq = fields.Integer(required=True, allow_none=True)
    reason = fields.String(required=True)
    detected_at = fields.String(required=True)


_OUT = {
    RECORD_ARCHIVED: RecordArchivedOut,
    SIGNATURE_INVALID: SignatureInvalidOut,
    FIXITY_FAILED: FixityFailedOut,
    AUDIT_CHAIN_BROKEN: AuditChainBrokenOut,
}


def new_event(event: str, payload: dict[str, Any]) -> Envelope:
    """An archive event, its payload checked against the strict schema before it is queued."""
    errors = _OUT[event]().validate(payload)
    if errors:
        raise ValueError(f"archive.{event} payload does not match its schema: {errors}")
    return Envelope.new(f"{SERVICE}.{event}", payload, producer=SERVICE)
