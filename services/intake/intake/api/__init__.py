"""The intake HTTP API: create_app() builds the Flask app (nothing is built at import time)."""

from __future__ import annotations

from flask import Flask, Response
from shared.logs import configure_logging
from shared.objectstore.port import StoreUnavailable
from shared.problems import ErrorTable, Problem
from shared.web import create_base_app
from sqlalchemy.exc import OperationalError

from intake.api.deps import Deps, build_deps
from intake.api.directives import blp
from intake.api.edxml import blp as edxml_blp
from intake.api.lifecycle import blp as lifecycle_blp
from intake.api.status_updates import blp as status_updates_blp
from intake.api.subscriptions import SubscriptionNotFound
from intake.api.subscriptions import blp as subscriptions_blp
from intake.domain.edxml import InvalidPacket
from intake.domain.errors import (
    AttachmentNotFound,
    AttachmentTooLarge,
    DirectiveNotFound,
    IdempotencyConflict,
    InvalidAttachment,
    InvalidMetadata,
    LifecycleConflict,
    StateSecretRefused,
)
from intake.domain.webhooks import UnsafeTarget
from intake.settings import SERVICE, Settings
from intake.status import DirectiveCompleted, InvalidReason

__all__ = ["Deps", "build_deps", "create_app"]

ERRORS: ErrorTable = {
    InvalidMetadata: (422, "invalid-metadata", "Invalid directive metadata"),
    InvalidPacket: (422, "invalid-edxml-packet", "Not an edXML packet docroute can take"),
    LifecycleConflict: (409, "lifecycle-conflict", "The directive's state does not allow this"),
    StateSecretRefused: (422, "state-secret-refused", "State-secret documents are not accepted"),
    InvalidAttachment: (422, "invalid-attachment", "Invalid attachment"),
    AttachmentTooLarge: (413, "attachment-too-large", "Attachment too large"),
    IdempotencyConflict: (422, "idempotency-key-reused", "Idempotency-Key reused with a different body"),
    DirectiveNotFound: (404, "directive-not-found", "Directive not found"),
    AttachmentNotFound: (404, "attachment-not-found", "Attachment not found"),
    DirectiveCompleted: (409, "directive-completed", "The directive is already completed"),
    InvalidReason: (422, "validation-error", "A reason is required"),
    UnsafeTarget: (422, "unsafe-webhook-target", "Webhook target refused"),
    SubscriptionNotFound: (404, "subscription-not-found", "Subscription not found"),
}


def create_app(settings: Settings | None = None, deps: Deps | None = None) -> Flask:
    """The intake Flask app; `deps` lets tests and the embedded runner pass their own collaborators."""
    if settings is None:
        settings = deps.settings if deps is not None else Settings.from_env()
    if deps is None:
        deps = build_deps(settings)
    configure_logging(settings.common.log_level)
    app, api = create_base_app(
        SERVICE,
        settings=settings.common,
        verifier=deps.verifier,
        error_table=ERRORS,
        # The broker is left out on purpose: submissions are accepted while it is down (the outbox
        # relay delivers later), so a broker outage must not take intake out of the load balancer.
        readiness={"database": deps.check_database, "object_store": deps.staging.ping},
        max_content_length=settings.max_request_bytes,
    )
    app.extensions["intake"] = deps
    api.register_blueprint(blp)
    api.register_blueprint(edxml_blp)
    api.register_blueprint(lifecycle_blp)
    api.register_blueprint(status_updates_blp)
    api.register_blueprint(subscriptions_blp)

    retry_after = str(settings.retry_after)

    def unavailable(exc: Exception) -> Response:
        what = "object store" if isinstance(exc, StoreUnavailable) else "database"
        return Problem(
            503,
            "Service Unavailable",
            f"the {what} is unavailable; nothing was registered, retry later",
            type="dependency-unavailable",
            headers={"Retry-After": retry_after},
        ).to_response()

    app.register_error_handler(StoreUnavailable, unavailable)
    app.register_error_handler(OperationalError, unavailable)
    return app
