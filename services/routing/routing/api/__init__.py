"""The routing HTTP API: create_app() builds the Flask app with its blueprints under /v1."""

from __future__ import annotations

import logging

import sqlalchemy as sa
from flask import Flask
from shared.web import create_base_app

from routing import bootstrap
from routing.adapters.db import migrate
from routing.api.deps import Deps, build_deps
from routing.api.views import ERROR_TABLE, rules_blp, tasks_blp, units_blp
from routing.documents import read_yaml
from routing.settings import Settings

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None, deps: Deps | None = None) -> Flask:
    settings = settings or Settings.from_env()
    if deps is None:
        deps = build_deps(settings)
        if deps.engine.dialect.name == "sqlite":
            # Embedded runs have no operator step; PostgreSQL deployments migrate before serving.
            migrate(deps.engine)
        _bootstrap(settings, deps)

    def check_db() -> None:
        with deps.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))

    app, api = create_base_app(
        "routing",
        settings=settings.common,
        verifier=deps.verifier,
        error_table=ERROR_TABLE,
        readiness={"database": check_db, "broker": deps.queues.ping, "object_store": deps.store.ping},
    )
    app.extensions["routing"] = deps
    for blp in (units_blp, rules_blp, tasks_blp):
        api.register_blueprint(blp)
    return app


def _bootstrap(settings: Settings, deps: Deps) -> None:
    units_doc = rules_doc = None
    source = ""
    if settings.units_file is not None:
        units_doc = read_yaml(settings.units_file.read_text(encoding="utf-8"))
    if settings.rules_file is not None:
        source = settings.rules_file.read_text(encoding="utf-8")
        rules_doc = read_yaml(source)
    if units_doc is not None or rules_doc is not None:
        bootstrap.bootstrap(
            engine=deps.engine,
            units_doc=units_doc,
            rules_doc=rules_doc,
            rules_source=source,
            queues=deps.queues,
        )
