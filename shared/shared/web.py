"""The Flask base of every docroute service: problem+json errors, auth, probes, metrics, correlation ids."""

from __future__ import annotations

import logging
import os
import re
import time
import uuid
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from typing import Any

import flask_smorest
from flask import Flask, Response, g, jsonify, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from werkzeug.exceptions import HTTPException

from shared.auth import Verifier, authenticate_request
from shared.docs_ui import register_docs
from shared.json_text import check_json_text, view_streams_own_body
from shared.logs import correlation_scope
from shared.openapi import ProblemResponsesPlugin, ProblemSchema, document_probes, register_problem_responses
from shared.problems import ErrorTable, Problem, render_problem
from shared.query import declared_query_parameters, operation_of, refuse_bad_query, refuse_nul_in_path
from shared.settings import CommonSettings

__all__ = ["CORRELATION_HEADER", "PUBLIC_PATHS", "ProblemApi", "create_base_app"]

CORRELATION_HEADER = "X-Correlation-ID"
# Routes anyone may call: probes, metrics scrapes and the API description.
PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/metrics", "/openapi.json", "/docs"})
PUBLIC_PREFIXES = ("/docs/",)
# Every response: no MIME sniffing (an attachment is never run as HTML or script), and a policy that lets an
# API answer load nothing at all; /docs sets its own, same-origin policy (shared.docs_ui).
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": (
        "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
}
DEFAULT_MAX_CONTENT_LENGTH = 50 * 1024 * 1024
# Accept the caller's correlation id only if it is safe to echo in headers and log lines.
_CORRELATION_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
_UNMATCHED_ROUTE = "<unmatched>"

log = logging.getLogger(__name__)

# Metric objects are process-wide constants (prometheus registers them once); each app labels its service.
HTTP_REQUESTS = Counter(
    "docroute_http_requests_total",
    "HTTP requests answered, by route template, method and status.",
    ["service", "route", "method", "status"],
)
HTTP_LATENCY = Histogram(
    "docroute_http_request_duration_seconds",
    "HTTP request latency, by route template, method and status.",
    ["service", "route", "method", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
)


class ProblemApi(flask_smorest.Api):  # type: ignore[misc]
    """flask-smorest Api whose HTTP errors are problem+json instead of smorest's own error format."""

    error_table: ErrorTable = {}  # noqa: RUF012 - replaced per instance by create_base_app
    # The documented error body is the problem+json one render_problem writes (shared.openapi).
    ERROR_SCHEMA = ProblemSchema

    def handle_http_exception(self, error: HTTPException) -> Response:
        return render_problem(error, self.error_table)

    def _register_responses(self) -> None:
        register_problem_responses(self.spec)


def _readiness_view(checks: Mapping[str, Callable[[], object]]) -> Callable[[], Response]:
    def readyz() -> Response:
        results: dict[str, object] = {}
        failed: list[str] = []
        for name, check in checks.items():
            try:
                detail = check()
            except Exception as exc:
                log.warning("readiness check %s failed: %s", name, exc, exc_info=exc)
                results[name] = f"failed: {type(exc).__name__}"
                failed.append(name)
            else:
                # A check may say more than "ok" (the archive shows its store's capabilities).
                results[name] = {"status": "ok", **detail} if isinstance(detail, Mapping) else "ok"
        if failed:
            return Problem(
                503,
                "Service Unavailable",
                f"not ready: {', '.join(failed)} failed",
                type="not-ready",
                extra={"checks": results},
                headers={"Retry-After": "5"},
            ).to_response()
        return jsonify({"status": "ready", "checks": results})

    return readyz


def _metrics_view() -> Response:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Under gunicorn each worker writes its own files; one scrape must add them all up.
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        output = generate_latest(registry)
    else:
        output = generate_latest(REGISTRY)
    return Response(output, status=200, content_type=CONTENT_TYPE_LATEST)


def _healthz() -> Response:
    return jsonify({"status": "ok"})


def create_base_app(
    service: str,
    *,
    settings: CommonSettings,
    verifier: Verifier,
    error_table: ErrorTable | None = None,
    readiness: Mapping[str, Callable[[], object]] | None = None,
    max_content_length: int = DEFAULT_MAX_CONTENT_LENGTH,
) -> tuple[Flask, flask_smorest.Api]:
    """A Flask app + flask-smorest Api with docroute's errors, auth, probes, metrics and correlation ids.

    The service registers its blueprints on the returned Api (under /v1).
    """
    app = Flask(service)
    app.config.update(
        API_TITLE=f"docroute {service}",
        API_VERSION="v1",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/",
        OPENAPI_JSON_PATH="openapi.json",
        MAX_CONTENT_LENGTH=max_content_length,
        # Our handlers answer every error; never let Flask turn one into an HTML page.
        PROPAGATE_EXCEPTIONS=False,
        TRAP_HTTP_EXCEPTIONS=False,
    )
    app.json.ensure_ascii = False  # type: ignore[attr-defined]  # Vietnamese text stays readable UTF-8
    app.extensions["docroute_settings"] = settings
    table: ErrorTable = dict(error_table or {})

    api = ProblemApi(
        spec_kwargs={
            "security": [{"bearerAuth": []}],
            "info": {"description": f"docroute {service} service. Every /v1 route needs a Bearer JWT."},
            "extra_plugins": [ProblemResponsesPlugin()],
        }
    )
    api.error_table = table
    api.init_app(app)
    api.spec.components.security_scheme(
        "bearerAuth", {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
    )

    def handle_any(exc: Exception) -> Response:
        return render_problem(exc, table)

    app.register_error_handler(Exception, handle_any)
    app.register_error_handler(HTTPException, handle_any)

    app.add_url_rule("/healthz", "healthz", _healthz, methods=["GET"])
    app.add_url_rule("/readyz", "readyz", _readiness_view(dict(readiness or {})), methods=["GET"])
    app.add_url_rule("/metrics", "metrics", _metrics_view, methods=["GET"])
    document_probes(api.spec, app)
    register_docs(app, title=f"docroute {service}", spec_url="/openapi.json")
    query_names: dict[tuple[str, str], frozenset[str]] = {}

    def check_request_input() -> None:
        """Refuses undeclared query parameters and unstorable JSON text before any view runs.

        Runs for authenticated routes only: the public probes, metrics and docs take no parameters.
        """
        endpoint = request.endpoint
        view = app.view_functions.get(endpoint) if endpoint else None
        if view is None:
            return
        key = (str(endpoint), request.method)
        if key not in query_names:
            query_names[key] = declared_query_parameters(operation_of(view, request.method))
        refuse_bad_query(request.args.items(multi=True), query_names[key])
        refuse_nul_in_path(request.view_args)
        if request.is_json and not view_streams_own_body(operation_of(view, request.method)):
            check_json_text(request.get_data(cache=True))

    @app.before_request
    def _start_request() -> None:
        g.docroute_started = time.perf_counter()
        incoming = request.headers.get(CORRELATION_HEADER, "")
        correlation_id = incoming if _CORRELATION_ID.match(incoming) else uuid.uuid4().hex
        g.docroute_correlation_id = correlation_id
        scope: AbstractContextManager[Any] = correlation_scope(correlation_id)
        scope.__enter__()
        g.docroute_correlation_scope = scope
        path = request.path
        if request.method == "OPTIONS" or path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES):
            return
        authenticate_request(verifier)
        check_request_input()

    @app.after_request
    def _finish_request(response: Response) -> Response:
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        correlation_id = g.get("docroute_correlation_id")
        if correlation_id:
            response.headers[CORRELATION_HEADER] = correlation_id
        started = g.get("docroute_started")
        rule = request.url_rule
        labels = {
            "service": service,
            "route": rule.rule if rule is not None else _UNMATCHED_ROUTE,
            "method": request.method,
            "status": str(response.status_code),
        }
        HTTP_REQUESTS.labels(**labels).inc()
        if started is not None:
            HTTP_LATENCY.labels(**labels).observe(time.perf_counter() - started)
        return response

    @app.teardown_request
    def _end_correlation(_exc: BaseException | None) -> None:
        scope = g.pop("docroute_correlation_scope", None)
        if scope is not None:
            scope.__exit__(None, None, None)

    return app, api
