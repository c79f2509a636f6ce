"""Blueprint /v1/subscriptions (admin): webhook subscriptions, their secret shown once, dead letters."""

from __future__ import annotations

from typing import Any

from flask import current_app
from flask_smorest import Blueprint
from marshmallow import EXCLUDE, Schema, fields, validate
from shared.auth import current_principal, require_roles

from intake.adapters.webhook_store import Subscription, WebhookStore
from intake.api.deps import Deps
from intake.api.directives import BAD_REQUEST
from intake.domain.errors import IntakeError
from intake.domain.models import AGENCY_CODE
from intake.domain.webhooks import FORMATS, check_url, new_secret

blp = Blueprint(
    "subscriptions",
    __name__,
    url_prefix="/v1",
    description="Webhook subscriptions: statuses pushed to an e-office system, signed (Standard Webhooks)",
)


class SubscriptionNotFound(IntakeError):
    """No subscription with that id (or it was deleted)."""


class SubscriptionIn(Schema):
    class Meta:
        unknown = EXCLUDE

    url = fields.String(required=True, validate=validate.Length(min=1, max=2048))
    senders = fields.List(
        fields.String(validate=validate.Regexp(AGENCY_CODE, error="an agency identifier (OrganId)")),
        allow_none=True,
        validate=validate.Length(max=1000),
        metadata={"description": "only directives from these OrganIds (absent: all)"},
    )
    directives = fields.List(
        fields.String(validate=validate.Length(min=1, max=36)),
        allow_none=True,
        validate=validate.Length(max=1000),
        metadata={"description": "only these directives (absent: all)"},
    )
    format = fields.String(load_default="json", validate=validate.OneOf(FORMATS))


class SubscriptionOut(Schema):
    id = fields.String(required=True)
    url = fields.String(required=True)
    senders = fields.List(fields.String(), allow_none=True)
    directives = fields.List(fields.String(), allow_none=True)
    format = fields.String(required=True)
    active = fields.Boolean(required=True)
    disabled_reason = fields.String(allow_none=True)
    created_at = fields.DateTime(required=True)
    created_by = fields.String(required=True)


class SubscriptionCreatedOut(SubscriptionOut):
    secret = fields.String(
        required=True,
        metadata={"description": "whsec_… signing secret; shown only in this answer, keep it safe"},
    )


class SubscriptionListOut(Schema):
    items = fields.List(fields.Nested(SubscriptionOut), required=True)


class DeadLetterOut(Schema):
    id = fields.String(required=True, metadata={"description": "the webhook-id"})
    status_update_id = fields.String(required=True)
    directive_id = fields.String(
        required=True, allow_none=True, metadata={"description": "null for a refused packet's 02"}
    )
    cursor = fields.Integer(required=True)
    attempts = fields.Integer(required=True)
    last_status = fields.Integer(allow_none=True)
    last_error = fields.String(allow_none=True)
    first_attempt_at = fields.DateTime(allow_none=True)


class DeadLetterListOut(Schema):
    items = fields.List(fields.Nested(DeadLetterOut), required=True)


class ReplayIn(Schema):
    class Meta:
        unknown = EXCLUDE

    ids = fields.List(fields.String(), load_default=list, validate=validate.Length(max=1000))


class ReplayOut(Schema):
    replayed = fields.Integer(required=True)


def _deps() -> Deps:
    deps: Deps = current_app.extensions["intake"]
    return deps


def _resource(subscription: Subscription) -> dict[str, Any]:
    return {
        "id": subscription.id,
        "url": subscription.url,
        "senders": None if subscription.senders is None else list(subscription.senders),
        "directives": None if subscription.directives is None else list(subscription.directives),
        "format": subscription.format,
        "active": subscription.active,
        "disabled_reason": subscription.disabled_reason,
        "created_at": subscription.created_at,
        "created_by": subscription.created_by,
    }


def _existing(store: WebhookStore, subscription_id: str) -> Subscription:
    found = store.get(subscription_id)
    if found is None:
        raise SubscriptionNotFound(f"no subscription {subscription_id}")
    return found


@blp.route("/subscriptions", methods=["POST"])
@require_roles("admin")
@blp.arguments(SubscriptionIn)
@blp.response(201, SubscriptionCreatedOut, description="Created; `secret` is shown this once")
@blp.alt_response(400, description=BAD_REQUEST)
@blp.alt_response(422, description="A bad URL (https only in production), OrganId or format")
@blp.alt_response(503, description="The database is unavailable; see Retry-After")
def create_subscription(body: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """Subscribe a URL to the statuses written from now on (pull /v1/status-updates for earlier ones)."""
    deps = _deps()
    # The scheme is checked now; where the name resolves is checked at every delivery (DNS can change).
    check_url(body["url"], production=deps.settings.common.is_production)
    secret = new_secret()
    store = WebhookStore(deps.engine, deps.secret_box)
    subscription = store.create(
        url=body["url"],
        senders=body.get("senders"),
        directives=body.get("directives"),
        format=body["format"],
        secret=secret,
        created_by=current_principal().sub,
        now=deps.clock(),
    )
    resource = _resource(subscription) | {"secret": secret}
    return resource, {"Location": f"/v1/subscriptions/{subscription.id}"}


@blp.route("/subscriptions", methods=["GET"])
@require_roles("admin")
@blp.response(200, SubscriptionListOut)
@blp.alt_response(400, description=BAD_REQUEST)
@blp.alt_response(503, description="The database is unavailable; see Retry-After")
def list_subscriptions() -> dict[str, Any]:
    """Every subscription (secrets are never shown again)."""
    return {"items": [_resource(s) for s in WebhookStore(_deps().engine, _deps().secret_box).list()]}


@blp.route("/subscriptions/<string:subscription_id>", methods=["GET"])
@require_roles("admin")
@blp.response(200, SubscriptionOut)
@blp.alt_response(400, description=BAD_REQUEST)
@blp.alt_response(404, description="No such subscription")
@blp.alt_response(503, description="The database is unavailable; see Retry-After")
def read_subscription(subscription_id: str) -> dict[str, Any]:
    """One subscription, with whether it is active (a 410 from its receiver disables it)."""
    return _resource(_existing(WebhookStore(_deps().engine, _deps().secret_box), subscription_id))


@blp.route("/subscriptions/<string:subscription_id>", methods=["DELETE"])
@require_roles("admin")
@blp.response(204)
@blp.alt_response(400, description=BAD_REQUEST)
@blp.alt_response(404, description="No such subscription")
@blp.alt_response(503, description="The database is unavailable; see Retry-After")
def delete_subscription(subscription_id: str) -> None:
    """Stop a subscription; what it had not delivered yet is cancelled."""
    deps = _deps()
    if not WebhookStore(deps.engine, deps.secret_box).delete(subscription_id, now=deps.clock()):
        raise SubscriptionNotFound(f"no subscription {subscription_id}")


@blp.route("/subscriptions/<string:subscription_id>/dead-letters", methods=["GET"])
@require_roles("admin")
@blp.response(200, DeadLetterListOut)
@blp.alt_response(400, description=BAD_REQUEST)
@blp.alt_response(404, description="No such subscription")
@blp.alt_response(503, description="The database is unavailable; see Retry-After")
def list_dead_letters(subscription_id: str) -> dict[str, Any]:
    """Deliveries that failed for the whole retry window."""
    store = WebhookStore(_deps().engine, _deps().secret_box)
    _existing(store, subscription_id)
    return {"items": store.dead(subscription_id)}


@blp.route("/subscriptions/<string:subscription_id>/dead-letters:replay", methods=["POST"])
@require_roles("admin")
@blp.arguments(ReplayIn)
@blp.response(200, ReplayOut)
@blp.alt_response(400, description=BAD_REQUEST)
@blp.alt_response(422, description="`ids` is not a list of webhook ids")
@blp.alt_response(404, description="No such subscription")
@blp.alt_response(503, description="The database is unavailable; see Retry-After")
def replay_dead_letters(body: dict[str, Any], subscription_id: str) -> dict[str, Any]:
    """Send dead-lettered deliveries again (all, or `ids`), with the same webhook-id and a new window."""
    deps = _deps()
    store = WebhookStore(deps.engine, deps.secret_box)
    _existing(store, subscription_id)
    count = store.replay(now=deps.clock(), subscription_id=subscription_id, ids=body.get("ids") or ())
    return {"replayed": count}
