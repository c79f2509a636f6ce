"""Wire schemas of what routing reads (tolerant) and emits (strict), validated with marshmallow."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from marshmallow import EXCLUDE, RAISE, Schema, ValidationError, fields, validate
from shared.naming import TASKS_EXCHANGE, events_exchange, queue_name, routing_key

DIRECTIVE_REGISTERED_QUEUE = queue_name("routing", "intake", "directive_registered")
DIRECTIVE_REGISTERED_EXCHANGE = events_exchange("intake")
DIRECTIVE_REGISTERED_KEY = routing_key("intake", "directive_registered", 1)
ROUTING_EVENTS = events_exchange("routing")
TASK_OFFERED = "routing.task_offered"
# One event per transaction that made tasks (routing a directive, a clerk adding units): every new task.
TASKS_ASSIGNED = "routing.tasks_assigned"
# One event per acknowledgement (of one task or a batch): `changes`, each a task_status_changed payload.
TASKS_ACKNOWLEDGED = "routing.tasks_acknowledged"
TASK_REMINDER = "routing.task_reminder"
# On the unit's queue when its task is cancelled because the directive was revoked: the task document (status
# `cancelled`) with `reason` and `revoked_at`.
TASK_CANCELLED = "routing.task_cancelled"
DIRECTIVE_REVOKED_QUEUE = queue_name("routing", "intake", "directive_revoked")
DIRECTIVE_REVOKED_KEY = routing_key("intake", "directive_revoked", 1)
DIRECTIVE_UPDATED_QUEUE = queue_name("routing", "intake", "directive_updated")
DIRECTIVE_UPDATED_KEY = routing_key("intake", "directive_updated", 1)
DIRECTIVE_REPLACED_QUEUE = queue_name("routing", "intake", "directive_replaced")
DIRECTIVE_REPLACED_KEY = routing_key("intake", "directive_replaced", 1)
# On the unit's queue when the directive of its open task was updated: the task document as it is now, with
# `revision`, `changes` (field → {from, to}, as intake announced them), `reason` and `due_date_from` (the
# task's due date before, when the update moved it).
TASK_UPDATED = "routing.task_updated"
DIRECTIVE_REJECTED_QUEUE = queue_name("routing", "intake", "directive_rejected")
DIRECTIVE_REJECTED_KEY = routing_key("intake", "directive_rejected", 1)
UNIT_QUEUE_EXCHANGE = TASKS_EXCHANGE


class _Tolerant(Schema):
    """What routing reads from intake: unknown fields are ignored."""

    class Meta:
        unknown = EXCLUDE


def _directive_id() -> fields.String:
    return fields.String(required=True, validate=validate.Length(min=1, max=64))


def _reason() -> fields.String:
    return fields.String(required=True, validate=validate.Length(min=1, max=2000))


class _Issuer(_Tolerant):
    name = fields.String(allow_none=True)
    code = fields.String(allow_none=True)


class _Metadata(_Tolerant):
    issuer = fields.Nested(_Issuer, load_default=dict)
    number = fields.String(allow_none=True)
    code_number = fields.String(allow_none=True)
    code_notation = fields.String(allow_none=True)
    document_type = fields.String(allow_none=True)
    subject = fields.String(allow_none=True)
    urgency = fields.String(allow_none=True)
    due_date = fields.Date(allow_none=True)


class _Attachment(_Tolerant):
    id = fields.String(required=True)
    filename = fields.String(allow_none=True)
    content_type = fields.String(allow_none=True)
    size = fields.Integer(allow_none=True)
    sha256 = fields.String(allow_none=True)
    bucket = fields.String(required=True)
    key = fields.String(required=True)


class DirectiveRegistered(_Tolerant):
    """intake.directive_registered.v1 — tolerant: unknown fields are ignored."""

    directive_id = _directive_id()
    arrival_number = fields.Integer(allow_none=True)
    arrival_date = fields.Date(allow_none=True)
    received_at = fields.AwareDateTime(allow_none=True)
    metadata = fields.Nested(_Metadata, load_default=dict)
    attachments = fields.List(fields.Nested(_Attachment), load_default=list)


class TaskDocument(Schema):
    """The task as emitted on unit queues, in routing.task_assigned.v1 and in routing.tasks_assigned.v1 —
    strict."""

    class Meta:
        unknown = RAISE

    id = fields.String(required=True)
    directive_id = fields.String(required=True)
    directive_number = fields.String(allow_none=True)
    subject = fields.String(allow_none=True)
    issuer = fields.Dict(allow_none=True)
    urgency = fields.String(allow_none=True)
    arrival_number = fields.Integer(allow_none=True)
    arrival_date = fields.String(allow_none=True)
    unit = fields.String(required=True)
    role = fields.String(required=True, validate=validate.OneOf(["chu_tri", "phoi_hop", "de_biet"]))
    title = fields.String(required=True)
    instructions = fields.String(allow_none=True)
    due_date = fields.String(allow_none=True)
    due_at = fields.String(allow_none=True)
    status = fields.String(required=True)
    overdue = fields.Boolean(required=True)
    lease_expires_at = fields.String(allow_none=True)
    rule_id = fields.String(allow_none=True)
    rule_version = fields.Integer(allow_none=True)
    reply_number = fields.String(allow_none=True)
    attachments = fields.List(fields.Dict(), required=True)
    created_at = fields.String(allow_none=True)
    updated_at = fields.String(allow_none=True)


class TaskReminder(TaskDocument):
    """routing.task_reminder on a unit queue and routing.task_overdue.v1 on routing.events — strict: the
    task document plus `task_id` (the same as `id`), `overdue_since` and a readable `message`."""

    task_id = fields.String(required=True)
    overdue_since = fields.String(required=True)
    message = fields.String(required=True)


class TaskUpdated(TaskDocument):
    """routing.task_updated on a unit queue — strict: the task document plus what the update changed."""

    revision = fields.Integer(required=True)
    changes = fields.Dict(required=True)
    reason = fields.String(allow_none=True)
    due_date_from = fields.String(allow_none=True)


class TaskCancelled(TaskDocument):
    """routing.task_cancelled on a unit queue — strict: the task document (status `cancelled`) plus why and
    when; `replaced_by` and `replaced_by_number` when a replacement ended it."""

    reason = fields.String(required=True)
    revoked_at = fields.String(required=True)
    replaced_by = fields.String()
    replaced_by_number = fields.String(allow_none=True)


class TasksAssigned(Schema):
    """routing.tasks_assigned.v1: the tasks one transaction made, all of one directive — strict."""

    class Meta:
        unknown = RAISE

    directive_id = fields.String(required=True)
    tasks = fields.List(fields.Nested(TaskDocument), required=True, validate=validate.Length(min=1))


class DirectiveRevoked(_Tolerant):
    """intake.directive_revoked.v1 — tolerant: unknown fields are ignored."""

    directive_id = _directive_id()
    reason = _reason()
    revoked_at = fields.AwareDateTime(required=True)
    revoked_by = fields.String(allow_none=True)


class DirectiveRejected(_Tolerant):
    """intake.directive_rejected.v1 — tolerant: unknown fields are ignored."""

    directive_id = _directive_id()
    reason = _reason()
    rejected_at = fields.AwareDateTime(required=True)
    rejected_by = fields.String(allow_none=True)


class DirectiveUpdated(_Tolerant):
    """intake.directive_updated.v1 — tolerant: unknown fields are ignored."""

    directive_id = _directive_id()
    revision = fields.Integer(required=True, validate=validate.Range(min=2))
    changes = fields.Dict(required=True)
    metadata = fields.Nested(_Metadata, required=True)
    attachments_added = fields.List(fields.Nested(_Attachment), load_default=list)
    reason = fields.String(allow_none=True)
    updated_at = fields.AwareDateTime(required=True)
    updated_by = fields.String(allow_none=True)


class _Replacement(_Tolerant):
    directive_id = _directive_id()
    number = fields.String(allow_none=True)
    arrival_number = fields.Integer(allow_none=True)


class DirectiveReplaced(_Tolerant):
    """intake.directive_replaced.v1 — tolerant: unknown fields are ignored."""

    directive_id = _directive_id()
    replacement = fields.Nested(_Replacement, required=True)
    reason = _reason()
    replaced_at = fields.AwareDateTime(required=True)
    replaced_by = fields.String(allow_none=True)


def _loader(schema: type[Schema]) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """A check of one event's payload: the payload loaded, or ValidationError for a payload routing cannot
    use (the consumer dead-letters it).

    One schema instance, shared by the consumers' threads (loading keeps no state on it): a new instance
    per event built its nested schemas again, ~12 % of a routing worker's time."""
    instance = schema()

    def load(payload: dict[str, Any]) -> dict[str, Any]:
        loaded: dict[str, Any] = instance.load(payload)
        return loaded

    return load


validate_directive_registered = _loader(DirectiveRegistered)
validate_directive_revoked = _loader(DirectiveRevoked)
validate_directive_rejected = _loader(DirectiveRejected)
validate_directive_updated = _loader(DirectiveUpdated)
validate_directive_replaced = _loader(DirectiveReplaced)


def check_task_document(payload: dict[str, Any]) -> None:
    errors = TaskDocument().validate(payload)
    if errors:
        raise ValidationError(errors)
