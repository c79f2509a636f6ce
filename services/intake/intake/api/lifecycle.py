"""Blueprint of a directive's lifecycle calls: POST /v1/directives/{id}:revoke (clerk)."""

from __future__ import annotations

from typing import Any

from flask import current_app
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate
from shared.auth import current_principal, require_roles

from intake.api.deps import Deps
from intake.api.resources import directive_resource
from intake.api.schemas import DirectiveOut
from intake.lifecycle import MAX_REASON, revoke_directive

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
