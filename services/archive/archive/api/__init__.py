"""The archive HTTP API: create_app() wires settings, dependencies, error table and blueprints."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import Flask
from shared.auth import TokenVerifier
from shared.objectstore import ObjectLocked, ObjectNotFound, StoreUnavailable
from shared.problems import ErrorTable
from shared.web import create_base_app

from archive.api import views
from archive.deps import ArchiveDeps, build_deps
from archive.domain.errors import (
    ChecksumMismatch,
    DirectiveNotFound,
    FixityFailed,
    InvalidRetentionConfig,
    LegalHoldRefused,
    MissingReason,
    RecordNotFound,
    UnknownRetentionClass,
)
from archive.settings import Settings

ERRORS: ErrorTable = {
    RecordNotFound: (404, "record-not-found", "Record not found"),
    DirectiveNotFound: (404, "directive-not-found", "Directive not found"),
    FixityFailed: (409, "fixity-failed", "Fixity check failed"),
    LegalHoldRefused: (409, "legal-hold-refused", "Legal hold change refused"),
    MissingReason: (422, "validation-error", "Validation failed"),
    UnknownRetentionClass: (422, "validation-error", "Validation failed"),
    ChecksumMismatch: (409, "checksum-mismatch", "Checksum mismatch"),
    ObjectLocked: (409, "object-locked", "Object is locked"),
    ObjectNotFound: (409, "fixity-failed", "Archived object missing"),
    StoreUnavailable: (503, "store-unavailable", "Object store unavailable"),
    InvalidRetentionConfig: (500, "configuration-error", "Retention configuration invalid"),
}


def create_app(settings: Settings | None = None, deps: ArchiveDeps | None = None) -> Flask:
    """The archive Flask app; tests pass their own settings and dependencies."""
    settings = settings or Settings.from_env()
    deps = deps or build_deps(settings)

    def database() -> None:
        with deps.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))

    readiness: dict[str, Any] = {"database": database, "object_store": deps.vault.store_report}
    app, api = create_base_app(
        "archive",
        settings=settings.common,
        verifier=TokenVerifier(settings.common.auth),
        error_table=ERRORS,
        readiness=readiness,
    )
    app.extensions["archive_deps"] = deps
    app.extensions["archive_settings"] = settings
    api.register_blueprint(views.records_blp, url_prefix="/v1")
    api.register_blueprint(views.audit_blp, url_prefix="/v1")
    api.register_blueprint(views.fixity_blp, url_prefix="/v1")
    api.register_blueprint(views.packages_blp, url_prefix="/v1")
    return app
