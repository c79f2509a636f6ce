"""HTTP schemas of the routing API (marshmallow): what requests may carry."""

from __future__ import annotations

from marshmallow import EXCLUDE, RAISE, Schema, fields, validate
from shared.query import page_number, page_size

from routing.domain.tasks import Role
from routing.handlers import ACK_BATCH_MAX

MAX_PER_PAGE = 100


class PageArgs(Schema):
    class Meta:
        unknown = EXCLUDE

    page = page_number()
    per_page = page_size(20, MAX_PER_PAGE)


class UnitListArgs(PageArgs):
    group = fields.String()
    active = fields.Boolean()


class UnitTaskListArgs(PageArgs):
    status = fields.String(
        validate=validate.OneOf(["assigned", "received", "in_progress", "completed", "rejected", "cancelled"])
    )


class DirectiveListArgs(PageArgs):
    status = fields.String(validate=validate.OneOf(["routed", "needs_assignment", "completed"]))


class UnitIn(Schema):
    class Meta:
        unknown = RAISE

    code = fields.String()
    name = fields.String(required=True, validate=validate.Length(min=1, max=300))
    groups = fields.List(fields.String(), load_default=list)
    tags = fields.List(fields.String(), load_default=list)
    active = fields.Boolean(load_default=True)


class PollIn(Schema):
    class Meta:
        unknown = RAISE

    max = fields.Integer(load_default=10, validate=validate.Range(min=1, max=100))
    wait_seconds = fields.Float(load_default=0, validate=validate.Range(min=0, max=30))
    lease_seconds = fields.Integer(validate=validate.Range(min=1, max=3600))


class AckIn(Schema):
    class Meta:
        unknown = RAISE

    ids = fields.List(
        fields.String(validate=validate.Length(min=1, max=64)),
        required=True,
        validate=validate.Length(min=1, max=ACK_BATCH_MAX),
    )


class StatusIn(Schema):
    class Meta:
        unknown = RAISE

    status = fields.String(required=True, validate=validate.OneOf(["in_progress", "completed", "rejected"]))
    note = fields.String(validate=validate.Length(max=4000), allow_none=True)
    reply_number = fields.String(validate=validate.Length(max=64), allow_none=True)


class AssignmentIn(Schema):
    class Meta:
        unknown = RAISE

    unit = fields.String(required=True)
    role = fields.Enum(Role, by_value=True)
    title = fields.String(validate=validate.Length(min=1, max=1000))
    instructions = fields.String(allow_none=True)
    due_date = fields.Date()
    cancel = fields.Boolean(load_default=False)


class AssignmentsIn(Schema):
    class Meta:
        unknown = RAISE

    assignments = fields.List(
        fields.Nested(AssignmentIn), required=True, validate=validate.Length(min=1, max=500)
    )


class IssuerIn(Schema):
    class Meta:
        unknown = EXCLUDE

    name = fields.String(load_default="")
    code = fields.String(load_default="")


class EvaluateIn(Schema):
    """A directive's metadata, as intake registers it; the arrival date defaults to today."""

    class Meta:
        unknown = EXCLUDE

    issuer = fields.Nested(IssuerIn, load_default=dict)
    number = fields.String(load_default="")
    code_number = fields.String()
    code_notation = fields.String()
    document_type = fields.String(load_default="")
    subject = fields.String(load_default="")
    urgency = fields.String(
        load_default="thuong", validate=validate.OneOf(["thuong", "khan", "thuong_khan", "hoa_toc"])
    )
    due_date = fields.Date(allow_none=True)
    arrival_date = fields.Date()
