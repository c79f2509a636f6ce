"""create_base_app: problem+json errors, auth on all but the probes, metrics, correlation ids."""

from __future__ import annotations

import logging
from pathlib import Path

import flask_smorest
import marshmallow as ma
import pytest
from flask import request
from flask.views import MethodView
from flask_smorest import Blueprint
from shared.auth import TokenVerifier, current_principal, issue_token, require_roles
from shared.logs import current_correlation_id
from shared.settings import CommonSettings
from shared.web import create_base_app

SECRET = "s" * 40


class DuplicateDirective(Exception):
    field = "number"


class QuotaExceeded(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.problem_extra = {"limit": 3}


class IssuerIn(ma.Schema):
    name = ma.fields.String(required=True)
    code = ma.fields.String(required=True)


class DirectiveIn(ma.Schema):
    subject = ma.fields.String(required=True)
    issuer = ma.fields.Nested(IssuerIn, required=True)


class DirectiveOut(ma.Schema):
    subject = ma.fields.String()
    correlation_id = ma.fields.String()


def make_app(tmp_path: Path, *, readiness=None, max_content_length: int = 1024):
    settings = CommonSettings.from_env({"DOCROUTE_DATA_DIR": str(tmp_path), "DOCROUTE_JWT_SECRET": SECRET})
    app, api = create_base_app(
        "intake",
        settings=settings,
        verifier=TokenVerifier(settings.auth),
        error_table={
            DuplicateDirective: (409, "duplicate-directive", "Duplicate directive"),
            QuotaExceeded: (429, "quota-exceeded", "Quota exceeded"),
        },
        readiness=readiness or {},
        max_content_length=max_content_length,
    )
    blp = Blueprint("directives", __name__, url_prefix="/v1/directives")

    @blp.route("")
    class Directives(MethodView):
        @require_roles("clerk", "submitter")
        @blp.arguments(DirectiveIn)
        @blp.response(201, DirectiveOut)
        def post(self, body):
            if body["subject"] == "trùng":
                raise DuplicateDirective("số 12/UBND đã được đăng ký")
            if body["subject"] == "quota":
                raise QuotaExceeded("too many")
            if body["subject"] == "boom":
                raise RuntimeError("secret internal detail")
            return {"subject": body["subject"], "correlation_id": current_correlation_id()}

        @require_roles("auditor")
        @blp.response(200, DirectiveOut)
        def get(self):
            return {"subject": current_principal().sub}

    api.register_blueprint(blp)
    return app


@pytest.fixture
def app(tmp_path):
    return make_app(tmp_path)


@pytest.fixture
def client(app):
    return app.test_client()


def bearer(*roles: str, unit: str | None = None) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_token(SECRET, sub='u1', roles=roles, unit=unit)}"}


def assert_problem(response, status: int) -> dict:
    assert response.status_code == status
    assert response.content_type == "application/problem+json"
    body = response.get_json(force=True)
    assert body["status"] == status
    assert body["type"].startswith("https://docroute.example/problems/")
    assert body["title"]
    return body


def test_create_returns_vietnamese_text_unescaped(client):
    response = client.post(
        "/v1/directives",
        json={"subject": "Giao nhiệm vụ", "issuer": {"name": "UBND tỉnh", "code": "X"}},
        headers=bearer("clerk"),
    )
    assert response.status_code == 201
    assert "Giao nhiệm vụ".encode() in response.data


def test_unknown_route_is_a_404_problem(client):
    body = assert_problem(client.get("/v1/nothing", headers=bearer("clerk")), 404)
    assert body["type"].endswith("/not-found")


def test_unknown_route_without_token_is_401_not_404(client):
    assert_problem(client.get("/v1/nothing"), 401)


def test_wrong_method_is_a_405_problem_with_allow(client):
    response = client.delete("/v1/directives", headers=bearer("clerk"))
    assert_problem(response, 405)
    assert "POST" in response.headers["Allow"]


def test_validation_error_is_422_with_flat_dotted_fields(client):
    response = client.post("/v1/directives", json={"issuer": {"name": "UBND"}}, headers=bearer("clerk"))
    body = assert_problem(response, 422)
    assert set(body["errors"]) == {"subject", "issuer.code"}
    assert body["errors"]["subject"] == ["Missing data for required field."]
    assert "json" not in body["errors"]
    assert "code" not in body  # smorest's own error format must not leak


def test_invalid_json_body_is_a_problem(client):
    response = client.post(
        "/v1/directives", data="{not json", content_type="application/json", headers=bearer("clerk")
    )
    assert response.status_code in (400, 422)
    assert response.content_type == "application/problem+json"


def test_error_table_maps_domain_errors_with_field(client):
    response = client.post(
        "/v1/directives",
        json={"subject": "trùng", "issuer": {"name": "a", "code": "b"}},
        headers=bearer("clerk"),
    )
    body = assert_problem(response, 409)
    assert body["type"] == "https://docroute.example/problems/duplicate-directive"
    assert body["title"] == "Duplicate directive"
    assert body["detail"] == "số 12/UBND đã được đăng ký"
    assert body["errors"] == {"number": ["số 12/UBND đã được đăng ký"]}


def test_error_table_carries_problem_extra(client):
    response = client.post(
        "/v1/directives",
        json={"subject": "quota", "issuer": {"name": "a", "code": "b"}},
        headers=bearer("clerk"),
    )
    body = assert_problem(response, 429)
    assert body["limit"] == 3
    assert "errors" not in body


def test_unexpected_error_is_500_without_trace_and_logged(client, caplog):
    with caplog.at_level(logging.ERROR):
        response = client.post(
            "/v1/directives",
            json={"subject": "boom", "issuer": {"name": "a", "code": "b"}},
            headers=bearer("clerk"),
        )
    body = assert_problem(response, 500)
    assert "secret internal detail" not in response.get_data(as_text=True)
    assert "Traceback" not in response.get_data(as_text=True)
    assert any(r.exc_info and "secret internal detail" in str(r.exc_info[1]) for r in caplog.records)
    assert body["type"].endswith("/internal-error")


def test_body_over_the_limit_is_413_problem(client):
    response = client.post(
        "/v1/directives", data=b"x" * 4096, content_type="application/json", headers=bearer("clerk")
    )
    assert_problem(response, 413)


def test_missing_role_is_403_problem(client):
    body = assert_problem(client.get("/v1/directives", headers=bearer("clerk")), 403)
    assert "auditor" in body["detail"]


def test_admin_is_not_implicitly_every_role(client):
    assert_problem(client.get("/v1/directives", headers=bearer("admin")), 403)


def test_role_check_runs_before_body_validation(client):
    assert_problem(client.post("/v1/directives", json={}, headers=bearer("auditor")), 403)


def test_accepted_role_reaches_the_view_with_the_principal(client):
    response = client.get("/v1/directives", headers=bearer("auditor"))
    assert response.status_code == 200
    assert response.get_json() == {"subject": "u1"}


def test_missing_token_is_401_with_bearer_challenge(client):
    response = client.get("/v1/directives", headers={"X-Correlation-ID": "denied-1"})
    assert_problem(response, 401)
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert response.headers["X-Correlation-ID"] == "denied-1"


def test_expired_token_is_401(client):
    token = issue_token(SECRET, sub="u", roles=["auditor"], now=0)
    body = assert_problem(client.get("/v1/directives", headers={"Authorization": f"Bearer {token}"}), 401)
    assert "expired" in body["detail"]


def test_wrong_content_type_is_a_415_problem(tmp_path):
    app = make_app(tmp_path)

    @app.post("/v1/raw")
    def raw():
        return {"got": request.json}

    response = app.test_client().post("/v1/raw", data="x", content_type="text/plain", headers=bearer("clerk"))
    assert_problem(response, 415)


def test_smorest_abort_becomes_a_problem(tmp_path):
    app = make_app(tmp_path)

    @app.get("/v1/gone")
    def gone():
        flask_smorest.abort(410, message="Văn bản đã bị thu hồi")

    body = assert_problem(app.test_client().get("/v1/gone", headers=bearer("clerk")), 410)
    assert body["detail"] == "Văn bản đã bị thu hồi"


def test_healthz_needs_no_token(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_readyz_reports_each_check(tmp_path):
    client = make_app(tmp_path, readiness={"database": lambda: None, "broker": lambda: None}).test_client()
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ready", "checks": {"database": "ok", "broker": "ok"}}


def test_readyz_failing_check_is_503_naming_it(tmp_path):
    def broker() -> None:
        raise ConnectionError("amqp://guest:guest@host down")

    client = make_app(tmp_path, readiness={"database": lambda: None, "broker": broker}).test_client()
    response = client.get("/readyz")
    body = assert_problem(response, 503)
    assert "broker" in body["detail"] and "database" not in body["detail"]
    assert body["checks"] == {"database": "ok", "broker": "failed: ConnectionError"}
    assert "guest:guest" not in response.get_data(as_text=True)


def test_metrics_count_requests_by_route_template(client):
    client.get("/v1/directives", headers=bearer("auditor"))
    client.get("/v1/nothing", headers=bearer("auditor"))
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.content_type.startswith("text/plain")
    text = response.get_data(as_text=True)
    assert (
        'docroute_http_requests_total{method="GET",route="/v1/directives",service="intake",status="200"}'
        in text
    )
    assert 'route="<unmatched>"' in text
    assert "docroute_http_request_duration_seconds_bucket" in text


def test_metrics_use_the_multiprocess_registry_when_configured(client, tmp_path, monkeypatch):
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    response = client.get("/metrics")
    assert response.status_code == 200
    # The default registry's per-process collectors are absent from a multiprocess scrape.
    assert "process_cpu_seconds_total" not in response.get_data(as_text=True)


def test_correlation_id_is_echoed_and_visible_to_the_view(client):
    response = client.post(
        "/v1/directives",
        json={"subject": "a", "issuer": {"name": "a", "code": "b"}},
        headers={**bearer("clerk"), "X-Correlation-ID": "req-42"},
    )
    assert response.headers["X-Correlation-ID"] == "req-42"
    assert response.get_json()["correlation_id"] == "req-42"


def test_correlation_id_is_generated_when_absent_or_unsafe(client):
    first = client.get("/healthz").headers["X-Correlation-ID"]
    second = client.get("/healthz", headers={"X-Correlation-ID": "bad id\twith spaces"}).headers[
        "X-Correlation-ID"
    ]
    assert first and second and first != second
    assert " " not in second
    assert current_correlation_id() is None  # the request's id does not leak into the caller


def test_openapi_is_public_and_names_the_bearer_scheme(client):
    response = client.get("/openapi.json")
    assert response.status_code == 200
    spec = response.get_json()
    assert spec["info"]["title"] == "docroute intake"
    assert spec["openapi"] == "3.0.3"
    assert spec["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    assert {"bearerAuth": []} in spec["security"]
    assert "/v1/directives" in spec["paths"]


def test_docs_page_is_public(client):
    response = client.get("/docs")
    assert response.status_code == 200
    assert b"swagger" in response.data.lower()


def test_gunicorn_settings_read_the_environment():
    from shared.gunicorn_conf import JsonAccessLogger, child_exit, settings_for

    defaults = settings_for(8002, {})
    assert defaults["bind"] == ["0.0.0.0:8002"]
    assert (defaults["workers"], defaults["threads"], defaults["timeout"]) == (2, 4, 60)
    assert defaults["logger_class"] is JsonAccessLogger
    assert defaults["child_exit"] is child_exit
    assert defaults["control_socket_disable"] is True
    custom = settings_for(
        8002, {"DOCROUTE_PORT": "9100", "DOCROUTE_WEB_WORKERS": "3", "DOCROUTE_WEB_THREADS": "8"}
    )
    assert custom["bind"] == ["0.0.0.0:9100"] and custom["workers"] == 3 and custom["threads"] == 8
    assert settings_for(8002, {"DOCROUTE_BIND": "127.0.0.1:1"})["bind"] == ["127.0.0.1:1"]


def test_gunicorn_timeout_must_exceed_the_long_poll():
    from shared.gunicorn_conf import settings_for
    from shared.settings import SettingsError

    with pytest.raises(SettingsError) as exc:
        settings_for(8001, {"DOCROUTE_WEB_TIMEOUT": "30"})
    assert str(exc.value).startswith("DOCROUTE_WEB_TIMEOUT: ")
