"""Blueprint of a directive's lifecycle calls (clerk): POST /v1/directives/{id}:revoke, PATCH
/v1/directives/{id} (an update: a new revision), GET /v1/directives/{id}/revisions and POST
/v1/directives/{id}:replace (a new directive in its place)."""

from __future__ import annotations

import base64
import binascii
import dataclasses
from typing import Any

from flask import current_app, request
from flask_smorest import Blueprint
from marshmallow import RAISE, Schema, fields, validate
from shared.auth import current_principal, require_roles
from shared.json_text import loads_checked, streams_own_body
from shared.problems import Problem

from intake.api.deps import Deps
from intake.api.directives import (
    BAD_REQUEST,
    READERS,
    REGISTER_ROLES,
    SUBMISSION_BODY,
    SUBMISSION_PARAMETERS,
    created_headers,
    upload_slot,
)
from intake.api.resources import attachment_url, directive_resource, directive_url
from intake.api.schemas import (
    MAX_CONTENT,
    AttachmentIn,
    DirectiveOut,
)
from intake.api.submission import close_uploads, invalid, load_or_invalid, read_submission
from intake.domain.enums import Urgency
from intake.domain.errors import DuplicateDirective
from intake.domain.models import MAX_SUBJECT
from intake.handlers import Upload, get_directive
from intake.lifecycle import (
    MAX_REASON,
    Changes,
    replace_directives,
    revoke_directive,
    update_directive,
)

blp = Blueprint("lifecycle", __name__, url_prefix="/v1", description="A directive's lifecycle")


class RevokeIn(Schema):
    reason = fields.String(required=True, validate=validate.Length(min=1, max=MAX_REASON))


def _deps() -> Deps:
    deps: Deps = current_app.extensions["intake"]
    return deps


@blp.route("/directives/<string:directive_id>:revoke", methods=["POST"])
@require_roles("clerk")
@blp.arguments(RevokeIn)
@blp.response(200, DirectiveOut, description="Revoked (or already revoked: nothing changes)")
@blp.alt_response(400, description="An undeclared query parameter, or JSON text that cannot be stored")
@blp.alt_response(404, description="No such directive")
@blp.alt_response(
    409, description="The directive was replaced or refused and cannot be revoked (its sender gets 16)"
)
@blp.alt_response(422, description="No reason given")
@blp.alt_response(503, description="Object store or database unavailable; see Retry-After")
def revoke(body: dict[str, Any], directive_id: str) -> dict[str, Any]:
    """Revoke a directive: routing cancels every task not yet done and tells each unit; the archive keeps
    every record and notes the revocation."""
    deps = _deps()
    done = revoke_directive(
        directive_id,
        reason=body["reason"],
        actor=current_principal().sub,
        repository=deps.repository,
        staging=deps.staging,
        clock=deps.clock,
        department=deps.department,
    )
    return directive_resource(done.directive)


PATCH_TYPES = frozenset({"application/merge-patch+json", "application/json"})


class DirectivePatchIn(Schema):
    """The changed fields of an update (RFC 7396 merge patch: a field left out is unchanged, `null` clears
    `due_date` or `content`), files to add, and why."""

    class Meta:
        unknown = RAISE

    subject = fields.String(validate=validate.Length(min=1, max=MAX_SUBJECT))
    due_date = fields.Date(allow_none=True)
    urgency = fields.String(validate=validate.OneOf([u.value for u in Urgency]))
    content = fields.String(allow_none=True, validate=validate.Length(max=MAX_CONTENT))
    attachments = fields.List(
        fields.Nested(AttachmentIn),
        validate=validate.Length(max=50),
        metadata={"description": "files to add (base64), each checked as an upload is"},
    )
    reason = fields.String(allow_none=True, validate=validate.Length(max=MAX_REASON))


class RevisionOut(Schema):
    revision = fields.Integer()
    at = fields.AwareDateTime()
    by = fields.String(allow_none=True)
    reason = fields.String(allow_none=True)
    changes = fields.Dict(
        metadata={
            "description": "field → {from, to} (subject, due_date, urgency, content); added files under "
            "`attachments: {added: [{id, filename}]}`; empty for revision 1 (the registration)"
        }
    )
    packet_url = fields.String(allow_none=True, metadata={"description": "the update packet (edXML), if any"})


class RevisionsOut(Schema):
    directive_id = fields.String()
    revision = fields.Integer(metadata={"description": "the current revision"})
    status = fields.String()
    items = fields.List(fields.Nested(RevisionOut))


class ReplaceQueryIn(Schema):
    reason = fields.String(validate=validate.Length(min=1, max=MAX_REASON))


def _patch_body() -> dict[str, Any]:
    if (request.mimetype or "") not in PATCH_TYPES:
        raise Problem(
            415,
            "Unsupported Media Type",
            "send the changed fields as application/merge-patch+json or application/json",
            type="unsupported-media-type",
        )
    try:
        body = loads_checked(request.get_data(cache=False) or b"")
    except ValueError as exc:
        raise invalid({"_body": [f"not valid JSON: {exc}"]}) from None
    if not isinstance(body, dict):
        raise invalid({"_body": ["the body must be a JSON object of the changed fields"]})
    return load_or_invalid(DirectivePatchIn(), body)


def _uploads(items: list[dict[str, Any]]) -> tuple[Upload, ...]:
    uploads = []
    for index, item in enumerate(items):
        try:
            data = base64.b64decode(item["content_base64"], validate=True)
        except (binascii.Error, ValueError):
            raise invalid({f"attachments[{index}].content_base64": ["not valid base64"]}) from None
        uploads.append(
            Upload(
                field=f"attachments[{index}]",
                filename=item["filename"],
                content_type=item["content_type"],
                data=data,
            )
        )
    return tuple(uploads)


@blp.route("/directives/<string:directive_id>", methods=["PATCH"])
@require_roles("clerk")
@blp.doc(
    requestBody={
        "required": True,
        "content": {
            "application/merge-patch+json": {"schema": DirectivePatchIn},
            "application/json": {"schema": DirectivePatchIn},
        },
    }
)
@blp.response(200, DirectiveOut, description="Updated (a new revision), or unchanged if nothing differed")
@blp.alt_response(400, description=BAD_REQUEST)
@blp.alt_response(404, description="No such directive")
@blp.alt_response(409, description="The directive was revoked, replaced or refused, or changed meanwhile")
@blp.alt_response(413, description="The body or an added file is over its limit")
@blp.alt_response(415, description="Not application/merge-patch+json or application/json")
@blp.alt_response(422, description="A field that cannot be updated, or an invalid value (named in `errors`)")
@blp.alt_response(503, description="Object store or database unavailable; see Retry-After")
def patch_directive(directive_id: str) -> dict[str, Any]:
    """Update a directive (subject, due date, urgency, content, added files): its next revision, the old
    one kept; routing moves the due dates that came from it, re-evaluates the rules and tells each unit."""
    body = _patch_body()
    deps = _deps()
    reason = body.pop("reason", None)
    uploads = _uploads(body.pop("attachments", None) or [])
    done = update_directive(
        directive_id,
        Changes(values=body, uploads=uploads),
        reason=reason,
        actor=current_principal().sub,
        repository=deps.repository,
        staging=deps.staging,
        clock=deps.clock,
        max_upload_bytes=deps.settings.max_upload_bytes,
        department=deps.department,
    )
    return directive_resource(done.directive)


@blp.route("/directives/<string:directive_id>/revisions", methods=["GET"])
@require_roles(*READERS)
@blp.response(200, RevisionsOut)
@blp.alt_response(400, description=BAD_REQUEST)
@blp.alt_response(404, description="No such directive, or one this submitter did not submit")
def list_revisions(directive_id: str) -> dict[str, Any]:
    """Every revision of a directive: 1 is the registration, each update one more with what it changed."""
    principal = current_principal()
    deps = _deps()
    directive = get_directive(
        directive_id,
        repository=deps.repository,
        only_submitted_by=None if principal.has_any(*REGISTER_ROLES) else principal.sub,
    )
    items: list[dict[str, Any]] = [
        {
            "revision": 1,
            "at": directive.received_at,
            "by": directive.submitted_by,
            "reason": None,
            "changes": {},
            "packet_url": None,
        }
    ]
    for row in deps.repository.revisions(directive.id):
        items.append(
            {
                "revision": row["revision"],
                "at": row["at"],
                "by": row["actor"],
                "reason": row["reason"],
                "changes": row["changes"],
                "packet_url": None
                if row["packet_id"] is None
                else attachment_url(directive.id, row["packet_id"]),
            }
        )
    return {
        "directive_id": directive.id,
        "revision": directive.revision,
        "status": directive.status.value,
        "items": items,
    }


@blp.route("/directives/<string:directive_id>:replace", methods=["POST"])
@require_roles("clerk")
@blp.arguments(ReplaceQueryIn, location="query")
@blp.doc(requestBody=SUBMISSION_BODY, parameters=SUBMISSION_PARAMETERS)
@blp.response(
    201,
    DirectiveOut,
    description="The new directive, registered and routed, with `replaces`; the replaced one is `replaced`",
    headers=created_headers("URL of the new directive"),
)
@blp.alt_response(400, description=BAD_REQUEST)
@blp.alt_response(404, description="No such directive to replace")
@blp.alt_response(
    409,
    description="The directive was revoked, refused or replaced by another, or the new one is already "
    "registered",
)
@blp.alt_response(413, description="A file, the metadata or the whole body is over its limit")
@blp.alt_response(415, description="Neither multipart/form-data nor application/json")
@blp.alt_response(422, description="Invalid metadata or file of the new directive (named in `errors`)")
@blp.alt_response(503, description="Object store or database unavailable; see Retry-After")
@streams_own_body
def replace(query: dict[str, Any], directive_id: str) -> tuple[dict[str, Any], int, dict[str, str]]:
    """Replace a directive by a new one, sent exactly as to POST /v1/directives (`reason` in the query):
    the new one is registered and routed, the old one's open tasks are cancelled pointing to it."""
    deps = _deps()
    principal = current_principal()
    with upload_slot(deps):
        submission = read_submission(request, submitted_by=principal.sub)
        if submission.idempotency_key is None:
            # A retried replacement answers the first one instead of a duplicate: one per directive.
            submission = dataclasses.replace(submission, idempotency_key=f"replace:{directive_id}")
        try:
            done = replace_directives(
                [directive_id],
                submission,
                reason=query.get("reason"),
                actor=principal.sub,
                repository=deps.repository,
                staging=deps.staging,
                organisation=deps.settings.organisation,
                max_upload_bytes=deps.settings.max_upload_bytes,
                clock=deps.clock,
                department=deps.department,
            )
        except DuplicateDirective as exc:
            raise Problem(
                409,
                "Directive already registered",
                f"{exc}; a replacement is a new document",
                type="duplicate-directive",
                errors={"number": [str(exc)]},
            ) from None
        finally:
            close_uploads(submission.uploads)
    headers = {"Location": directive_url(done.directive.id)}
    if not done.created:
        headers["Idempotent-Replayed"] = "true"
    return directive_resource(done.directive), 201, headers
