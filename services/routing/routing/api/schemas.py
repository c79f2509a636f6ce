"""HTTP schemas of the routing API (marshmallow): what requests may carry."""

from __future__ import annotations

from marshmallow import EXCLUDE, RAISE, Schema, fields, validate
from shared.query import page_number, page_size

from routing.acks import ACK_BATCH_MAX
from routing.domain.rules import MAX_FACT, MAX_INSTRUCTIONS, MAX_NUMBER, MAX_TITLE
from routing.domain.tasks import Role
from routing.domain.units import MAX_LABELS, MAX_NAME, MAX_TAG

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
    status = fields.String(
        validate=validate.OneOf(
            ["routed", "needs_assignment", "completed", "revoked", "replaced", "rejected"]
        )
    )


class UnitIn(Schema):
    class Meta:
        unknown = RAISE

    code = fields.String(validate=validate.Length(max=64))
    name = fields.String(required=True, validate=validate.Length(min=1, max=MAX_NAME))
    groups = fields.List(
        fields.String(validate=validate.Length(max=MAX_TAG)),
        load_default=list,
        validate=validate.Length(max=MAX_LABELS),
    )
    tags = fields.List(
        fields.String(validate=validate.Length(max=MAX_TAG)),
        load_default=list,
        validate=validate.Length(max=MAX_LABELS),
    )
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

    unit = fields.String(required=True, validate=validate.Length(min=1, max=64))
    role = fields.Enum(Role, by_value=True)
    title = fields.String(validate=validate.Length(min=1, max=MAX_TITLE))
    instructions = fields.String(allow_none=True, validate=validate.Length(max=MAX_INSTRUCTIONS))
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

    name = fields.String(load_default="", validate=validate.Length(max=500))
    code = fields.String(load_default="", validate=validate.Length(max=100))


class EvaluateIn(Schema):
    """A directive's metadata, as intake registers it; the arrival date defaults to today."""

    class Meta:
        unknown = EXCLUDE

    issuer = fields.Nested(IssuerIn, load_default=dict)
    number = fields.String(load_default="", validate=validate.Length(max=MAX_NUMBER))
    code_number = fields.String(validate=validate.Length(max=MAX_NUMBER))
    code_notation = fields.String(validate=validate.Length(max=MAX_NUMBER))
    document_type = fields.String(load_default="", validate=validate.Length(max=200))
    subject = fields.String(load_default="", validate=validate.Length(max=MAX_FACT))
    urgency = fields.String(
        load_default="thuong", validate=validate.OneOf(["thuong", "khan", "thuong_khan", "hoa_toc"])
    )
    due_date = fields.Date(allow_none=True)
    arrival_date = fields.Date()


class StatusForm(StatusIn):
    """The multipart form of a status change: the JSON fields as form fields, plus the report file."""

    report = fields.Raw(metadata={"type": "string", "format": "binary", "description": "a report file"})


# Documentation of the YAML/JSON documents PUT /v1/rules and POST /v1/units:import take. They are validated
# by the domain (routing.domain.rules, routing.domain.units), which names each rule and field at fault.


class DueDoc(Schema):
    """Exactly one of the three."""

    working_days = fields.Integer(validate=validate.Range(min=0, max=365))
    date = fields.Date()
    directive = fields.Boolean(metadata={"description": "true: the directive's own due date"})


class MatchOperatorsDoc(Schema):
    """Each operator takes a string or a list of strings (at most 100, each at most 300 characters)."""

    any = fields.List(fields.String(), metadata={"description": "one of the phrases, diacritics-insensitive"})
    all = fields.List(fields.String(), metadata={"description": "every phrase"})
    exact = fields.List(fields.String(), metadata={"description": "the whole value, NFC"})
    regex = fields.List(fields.String(), metadata={"description": "RE2 syntax, at most 300 characters"})
    fuzzy = fields.List(fields.String(), metadata={"description": "close to the phrase (difflib)"})
    threshold = fields.Float(validate=validate.Range(min=0.5, max=1), metadata={"description": "for fuzzy"})


class MatchDoc(Schema):
    issuer = fields.Nested(MatchOperatorsDoc)
    document_type = fields.Nested(MatchOperatorsDoc)
    notation = fields.Nested(MatchOperatorsDoc)
    subject = fields.Nested(MatchOperatorsDoc)
    urgency = fields.Nested(MatchOperatorsDoc)


class TaskTargetDoc(Schema):
    units = fields.List(fields.String())
    groups = fields.List(fields.String())


class TaskTemplateDoc(Schema):
    to = fields.Nested(TaskTargetDoc, required=True)
    role = fields.Enum(Role, by_value=True, required=True)
    title = fields.String(validate=validate.Length(max=MAX_TITLE))
    instructions = fields.String(validate=validate.Length(max=MAX_INSTRUCTIONS))
    due = fields.Nested(DueDoc)


class RuleDoc(Schema):
    id = fields.String(required=True, validate=validate.Regexp(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"))
    description = fields.String(validate=validate.Length(max=2000))
    match = fields.Nested(MatchDoc, required=True)
    tasks = fields.List(
        fields.Nested(TaskTemplateDoc), required=True, validate=validate.Length(min=1, max=100)
    )


class RulesDefaultsDoc(Schema):
    due = fields.Dict(
        keys=fields.String(validate=validate.OneOf(["thuong", "khan", "thuong_khan", "hoa_toc"])),
        values=fields.Nested(DueDoc),
    )


class RuleSetDocument(Schema):
    """A whole rule set (samples/rules.yaml), as YAML (plain data: no anchors, aliases or tags) or JSON."""

    version = fields.Integer(validate=validate.Equal(1))
    defaults = fields.Nested(RulesDefaultsDoc)
    rules = fields.List(fields.Nested(RuleDoc), required=True, validate=validate.Length(max=1000))


class UnitDoc(UnitIn):
    code = fields.String(required=True, validate=validate.Length(max=64))


class UnitsDocument(Schema):
    """Units to upsert (samples/units.yaml), as YAML (plain data) or JSON."""

    units = fields.List(fields.Nested(UnitDoc), required=True)
