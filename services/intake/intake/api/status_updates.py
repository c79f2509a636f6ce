"""Blueprint for the closed loop's reads and the clerk's refusal: /v1/status-updates, a directive's
status updates, and POST /v1/directives/{id}:reject."""

from __future__ import annotations

from typing import Any

from flask import current_app
from flask_smorest import Blueprint
from marshmallow import EXCLUDE, Schema, fields, validate
from shared.auth import Principal, current_principal, require_roles

from intake.adapters.status_store import StatusStore, StatusUpdate
from intake.api.deps import Deps
from intake.api.directives import BAD_REQUEST
from intake.api.resources import directive_url
from intake.domain.edxml import Organ
from intake.handlers import get_directive
from intake.status import reject_directive

blp = Blueprint(
    "status_updates",
    __name__,
    url_prefix="/v1",
    description="What became of a sender's document: QCVN 102 statuses (01 … 06, 15, 16), pull and refusal",
)

# Who reads the stream: the exchange platform and e-office systems (submitter, their own directives'),
# the department's clerks and auditors (all).
READERS = ("clerk", "submitter", "auditor", "admin")
ALL_ROLES = frozenset({"clerk", "auditor", "admin"})
MAX_LIMIT = 500
MAX_CURSOR = 2**63 - 1


class StatusPageIn(Schema):
    class Meta:
        unknown = EXCLUDE

    after = fields.Integer(
        load_default=0,
        # A cursor is a BIGINT: beyond it the database cannot even compare (an overflow, not "no more").
        validate=validate.Range(min=0, max=MAX_CURSOR),
        metadata={"description": "the `next` of the previous page; absent: from the start"},
    )
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=MAX_LIMIT))


class StaffOut(Schema):
    department = fields.String(allow_none=True)
    staff = fields.String(allow_none=True)
    mobile = fields.String(allow_none=True)
    email = fields.String(allow_none=True)


class StatusUpdateOut(Schema):
    id = fields.String(required=True)
    cursor = fields.Integer(required=True)
    directive_id = fields.String(
        required=True,
        allow_none=True,
        metadata={"description": "null for 02 about a refused edXML packet (see `sender`, `document_id`)"},
    )
    status_code = fields.String(
        required=True, metadata={"description": "QCVN 102 StatusCode: 01 02 03 04 05 06 15 16"}
    )
    description = fields.String(required=True)
    occurred_at = fields.DateTime(required=True)
    staff = fields.Nested(StaffOut, allow_none=True)
    sender = fields.String(allow_none=True, metadata={"description": "the original's OrganId"})
    document_id = fields.String(allow_none=True, metadata={"description": "ResponseFor/DocumentId"})
    packet = fields.String(required=True, metadata={"description": "the QCVN 102 status packet (XML)"})


class StatusPageOut(Schema):
    items = fields.List(fields.Nested(StatusUpdateOut), required=True)
    next = fields.Integer(
        required=True, metadata={"description": "pass as `after` for the next page (the last cursor seen)"}
    )


class RejectIn(Schema):
    class Meta:
        unknown = EXCLUDE

    reason = fields.String(required=True, validate=validate.Length(min=1, max=2000))


class RejectOut(Schema):
    id = fields.String(required=True)
    status = fields.String(required=True)
    url = fields.String(required=True)
    status_updates = fields.List(fields.Nested(StatusUpdateOut), required=True)


def _deps() -> Deps:
    deps: Deps = current_app.extensions["intake"]
    return deps


def _only_own(principal: Principal) -> str | None:
    return None if principal.has_any(*ALL_ROLES) else principal.sub


def status_item(update: StatusUpdate, sender: Organ) -> dict[str, Any]:
    """One status as the pull endpoints and the JSON webhooks show it."""
    staff = update.staff
    return {
        "id": update.id,
        "cursor": update.cursor,
        "directive_id": update.directive_id,
        "status_code": update.status_code,
        "description": update.description,
        "occurred_at": update.occurred_at,
        "staff": None
        if staff is None
        else {
            "department": staff.department,
            "staff": staff.staff,
            "mobile": staff.mobile,
            "email": staff.email,
        },
        "sender": update.response_for.organ_id,
        "document_id": update.response_for.document_id,
        "packet": update.packet(sender),
    }


def _page(updates: list[StatusUpdate], after: int) -> dict[str, Any]:
    sender = _deps().department.organ
    return {
        "items": [status_item(u, sender) for u in updates],
        "next": updates[-1].cursor if updates else after,
    }


@blp.route("/status-updates", methods=["GET"])
@require_roles(*READERS)
@blp.arguments(StatusPageIn, location="query", as_kwargs=True)
@blp.response(200, StatusPageOut)
@blp.alt_response(400, description=BAD_REQUEST)
@blp.alt_response(422, description="`after` below 0 or `limit` outside 1–500")
@blp.alt_response(503, description="The database is unavailable; see Retry-After")
def list_status_updates(after: int, limit: int) -> dict[str, Any]:
    """Every status in cursor order (gap-free): a submitter sees its own directives', clerks all."""
    store = StatusStore(_deps().engine)
    updates = store.page(after=after, limit=limit, submitted_by=_only_own(current_principal()))
    return _page(updates, after)


@blp.route("/directives/<string:directive_id>/status-updates", methods=["GET"])
@require_roles(*READERS)
@blp.arguments(StatusPageIn, location="query", as_kwargs=True)
@blp.response(200, StatusPageOut)
@blp.alt_response(400, description=BAD_REQUEST)
@blp.alt_response(422, description="`after` below 0 or `limit` outside 1–500")
@blp.alt_response(404, description="No such directive (or not the submitter's)")
@blp.alt_response(503, description="The database is unavailable; see Retry-After")
def directive_status_updates(directive_id: str, after: int, limit: int) -> dict[str, Any]:
    """One directive's statuses, in order."""
    deps = _deps()
    get_directive(directive_id, repository=deps.repository, only_submitted_by=_only_own(current_principal()))
    updates = StatusStore(deps.engine).page(after=after, limit=limit, directive_id=directive_id)
    return _page(updates, after)


@blp.route("/directives/<string:directive_id>:reject", methods=["POST"])
@require_roles("clerk")
@blp.arguments(RejectIn)
@blp.response(200, RejectOut, description="Refused (or refused before: the same answer again)")
@blp.alt_response(400, description=BAD_REQUEST)
@blp.alt_response(404, description="No such directive")
@blp.alt_response(409, description="The directive is already completed")
@blp.alt_response(422, description="`reason` is missing or empty")
@blp.alt_response(503, description="The database is unavailable; see Retry-After")
def reject(body: dict[str, Any], directive_id: str) -> dict[str, Any]:
    """Refuse a directive (từ chối tiếp nhận): its sender gets status 02 with the reason, and routing is
    told (`intake.directive_rejected.v1`) so that its tasks can be cancelled."""
    deps = _deps()
    principal = current_principal()
    reject_directive(
        directive_id,
        body["reason"],
        engine=deps.engine,
        actor=principal.sub,
        department=deps.department,
        clock=deps.clock,
    )
    updates = StatusStore(deps.engine).page(after=0, limit=MAX_LIMIT, directive_id=directive_id)
    sender = deps.department.organ
    return {
        "id": directive_id,
        "status": "rejected",
        "url": directive_url(directive_id),
        "status_updates": [status_item(u, sender) for u in updates],
    }
