"""HTTP response schemas of the routing API: what answers carry, as /openapi.json documents them.

Strict (unknown keys refused), so the API tests can check real answers against them: a field the code adds
without documenting it fails a test instead of surprising an integrator's generated client.
"""

from __future__ import annotations

from marshmallow import RAISE, Schema, fields, validate

from routing.acks import AckResult
from routing.domain.tasks import Role, Status

STATUSES = [s.value for s in Status]
ROLES = [r.value for r in Role]
DIRECTIVE_STATUSES = ["routed", "needs_assignment", "completed", "revoked", "replaced", "rejected"]


class _Out(Schema):
    class Meta:
        unknown = RAISE


class Page(_Out):
    total = fields.Integer(required=True, metadata={"description": "items across every page"})
    page = fields.Integer(required=True)
    per_page = fields.Integer(required=True)


class ProblemDetails(_Out):
    """RFC 9457 problem details, served as `application/problem+json`."""

    type = fields.String(required=True, metadata={"description": "URI naming the kind of problem"})
    title = fields.String(required=True)
    status = fields.Integer(required=True)
    detail = fields.String()
    errors = fields.Dict(
        keys=fields.String(),
        values=fields.List(fields.String()),
        metadata={"description": "validation messages by field (dotted path), when a field is at fault"},
    )
    issues = fields.List(
        fields.Dict(), metadata={"description": "rule set refusals: `{rule, field, message}` each"}
    )


class UnitOut(_Out):
    code = fields.String(required=True)
    name = fields.String(required=True)
    groups = fields.List(fields.String(), required=True)
    tags = fields.List(fields.String(), required=True)
    active = fields.Boolean(required=True)
    created_at = fields.AwareDateTime(allow_none=True)
    updated_at = fields.AwareDateTime(allow_none=True)


class UnitPage(Page):
    items = fields.List(fields.Nested(UnitOut), required=True)


class ImportOut(_Out):
    created = fields.List(fields.String(), required=True)
    updated = fields.List(fields.String(), required=True)
    unchanged = fields.List(fields.String(), required=True)


class ActiveRulesOut(_Out):
    version = fields.Integer(required=True, allow_none=True, metadata={"description": "null: none stored"})
    document = fields.Dict(required=True, metadata={"description": "the rule set as stored (rules format)"})
    created_by = fields.String()


class RuleVersionOut(_Out):
    version = fields.Integer(required=True)
    sha256 = fields.String(required=True)
    created_at = fields.AwareDateTime(allow_none=True)
    created_by = fields.String(allow_none=True)
    rules = fields.List(fields.String(), required=True, metadata={"description": "rule ids, in order"})
    created = fields.Boolean(
        required=True,
        allow_none=True,
        metadata={"description": "on PUT: false when the same set was stored already; null in listings"},
    )


class RuleVersionPage(Page):
    items = fields.List(fields.Nested(RuleVersionOut), required=True)


class RuleVersionDetail(RuleVersionOut):
    document = fields.Dict(required=True)
    source = fields.String(required=True, allow_none=True, metadata={"description": "the text as sent"})


class PlannedTaskOut(_Out):
    unit = fields.String(required=True)
    role = fields.String(required=True, validate=validate.OneOf(ROLES))
    title = fields.String(required=True)
    instructions = fields.String(required=True, allow_none=True)
    due_date = fields.Date(required=True, allow_none=True)
    due_at = fields.AwareDateTime(required=True, allow_none=True)
    rule_id = fields.String(required=True, allow_none=True)


class EvaluationOut(_Out):
    rule_version = fields.Integer(required=True, allow_none=True)
    matched_rules = fields.List(fields.String(), required=True)
    tasks = fields.List(fields.Nested(PlannedTaskOut), required=True)


class IssuerOut(_Out):
    name = fields.String(allow_none=True)
    code = fields.String(allow_none=True)


class TaskAttachmentOut(_Out):
    id = fields.String(required=True)
    filename = fields.String(required=True, allow_none=True)
    content_type = fields.String(required=True, allow_none=True)
    size = fields.Integer(required=True, allow_none=True)
    sha256 = fields.String(required=True, allow_none=True)
    href = fields.String(required=True, metadata={"description": "GET it with the same token"})


class TaskOut(_Out):
    """A task as its unit sees it; the same document travels as `routing.task_offered`."""

    id = fields.String(required=True)
    directive_id = fields.String(required=True)
    directive_number = fields.String(
        required=True, allow_none=True, metadata={"description": "số và ký hiệu"}
    )
    subject = fields.String(required=True, allow_none=True)
    issuer = fields.Nested(IssuerOut, required=True, allow_none=True)
    urgency = fields.String(required=True, allow_none=True)
    arrival_number = fields.Integer(required=True, allow_none=True)
    arrival_date = fields.Date(required=True, allow_none=True)
    unit = fields.String(required=True)
    role = fields.String(required=True, validate=validate.OneOf(ROLES))
    title = fields.String(required=True)
    instructions = fields.String(required=True, allow_none=True)
    due_date = fields.Date(required=True, allow_none=True)
    due_at = fields.AwareDateTime(required=True, allow_none=True)
    status = fields.String(required=True, validate=validate.OneOf(STATUSES))
    overdue = fields.Boolean(required=True)
    lease_expires_at = fields.AwareDateTime(required=True, allow_none=True)
    rule_id = fields.String(required=True, allow_none=True)
    rule_version = fields.Integer(required=True, allow_none=True)
    reply_number = fields.String(required=True, allow_none=True)
    attachments = fields.List(fields.Nested(TaskAttachmentOut), required=True)
    created_at = fields.AwareDateTime(required=True, allow_none=True)
    updated_at = fields.AwareDateTime(required=True, allow_none=True)


class ReportOut(_Out):
    bucket = fields.String(required=True)
    key = fields.String(required=True)
    sha256 = fields.String(required=True)
    size = fields.Integer(required=True)
    filename = fields.String(required=True, metadata={"description": "cleaned: no path, controls or quotes"})
    content_type = fields.String(required=True)


class HistoryOut(_Out):
    at = fields.AwareDateTime(required=True, allow_none=True)
    from_status = fields.String(required=True, allow_none=True)
    to_status = fields.String(required=True)
    actor = fields.String(required=True)
    note = fields.String(required=True, allow_none=True)
    reply_number = fields.String(required=True, allow_none=True)
    report = fields.Nested(ReportOut, required=True, allow_none=True)


class TaskDetail(TaskOut):
    history = fields.List(fields.Nested(HistoryOut), required=True)


class TaskPage(Page):
    items = fields.List(fields.Nested(TaskOut), required=True)


class PollOut(_Out):
    items = fields.List(fields.Nested(TaskOut), required=True, metadata={"description": "leased tasks"})
    reminders = fields.List(
        fields.Nested(TaskOut), required=True, metadata={"description": "open tasks reminded as overdue"}
    )


class AckOutcomeOut(_Out):
    id = fields.String(required=True)
    result = fields.String(required=True, validate=validate.OneOf([r.value for r in AckResult]))
    status = fields.String(required=True, allow_none=True)
    detail = fields.String(required=True, allow_none=True)


class AckCounts(_Out):
    acked = fields.Integer(required=True)
    unchanged = fields.Integer(required=True)
    conflict = fields.Integer(required=True)
    not_found = fields.Integer(required=True)


class AckManyOut(_Out):
    items = fields.List(fields.Nested(AckOutcomeOut), required=True)
    counts = fields.Nested(AckCounts, required=True)


class DirectiveSummary(_Out):
    id = fields.String(required=True)
    number = fields.String(required=True, allow_none=True)
    subject = fields.String(required=True, allow_none=True)
    issuer = fields.Nested(IssuerOut, required=True, allow_none=True)
    urgency = fields.String(required=True, allow_none=True)
    arrival_number = fields.Integer(required=True, allow_none=True)
    arrival_date = fields.Date(required=True)
    due_date = fields.Date(required=True, allow_none=True)
    status = fields.String(required=True, validate=validate.OneOf(DIRECTIVE_STATUSES))


class DirectivePage(Page):
    items = fields.List(fields.Nested(DirectiveSummary), required=True)


class ProgressTaskOut(_Out):
    task_id = fields.String(required=True)
    unit = fields.String(required=True)
    role = fields.String(required=True, validate=validate.OneOf(ROLES))
    status = fields.String(required=True, validate=validate.OneOf(STATUSES))
    due_date = fields.Date(required=True, allow_none=True)
    due_at = fields.AwareDateTime(required=True, allow_none=True)
    overdue = fields.Boolean(required=True)


class ProgressOut(_Out):
    directive_id = fields.String(required=True)
    number = fields.String(required=True, allow_none=True)
    subject = fields.String(required=True, allow_none=True)
    arrival_number = fields.Integer(required=True, allow_none=True)
    status = fields.String(required=True, validate=validate.OneOf(DIRECTIVE_STATUSES))
    matched_rules = fields.List(fields.String(), required=True, allow_none=True)
    rule_version = fields.Integer(required=True, allow_none=True)
    tasks = fields.List(fields.Nested(ProgressTaskOut), required=True)
    counts = fields.Dict(keys=fields.String(), values=fields.Integer(), required=True)
    overdue_units = fields.List(fields.String(), required=True)
    done = fields.Boolean(required=True, metadata={"description": "every chu_tri task is completed"})
    revision = fields.Integer(
        required=True,
        metadata={"description": "the directive's revision as routing applied it (1, +1 per update)"},
    )
    replaced_by = fields.String(
        required=True, allow_none=True, metadata={"description": "the directive that replaced this one"}
    )
    replaces = fields.List(
        fields.String(), required=True, metadata={"description": "the directives this one replaced"}
    )


class OverdueGroup(_Out):
    unit = fields.String(required=True)
    tasks = fields.List(fields.Nested(TaskOut), required=True)
    count = fields.Integer(required=True)


class OverduePage(Page):
    items = fields.List(fields.Nested(OverdueGroup), required=True)
