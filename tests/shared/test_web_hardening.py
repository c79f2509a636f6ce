"""The shared web layer's defences: security headers, same-origin /docs, bad input refused (not a 500)."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import marshmallow as ma
import pytest
from flask.views import MethodView
from flask_smorest import Blueprint
from shared.auth import TokenVerifier, issue_token, require_roles
from shared.docs_ui import DOCS_ASSET_PREFIX, swagger_ui_version
from shared.query import MAX_PAGE, SafeAwareDateTime, page_number, page_size
from shared.settings import CommonSettings
from shared.web import create_base_app

SECRET = "s" * 40


class ItemIn(ma.Schema):
    subject = ma.fields.String(required=True)
    tags = ma.fields.List(ma.fields.String(), load_default=list)
    extra = ma.fields.Raw()


class ListArgs(ma.Schema):
    class Meta:
        unknown = ma.EXCLUDE

    page = page_number()
    per_page = page_size(20, 100)
    directive = ma.fields.String()
    since = SafeAwareDateTime()


def make_app(tmp_path: Path):
    settings = CommonSettings.from_env({"DOCROUTE_DATA_DIR": str(tmp_path), "DOCROUTE_JWT_SECRET": SECRET})
    app, api = create_base_app("archive", settings=settings, verifier=TokenVerifier(settings.auth))
    blp = Blueprint("items", __name__, url_prefix="/v1")

    @blp.route("/items", methods=["GET"])
    @require_roles("auditor")
    @blp.arguments(ListArgs, location="query", as_kwargs=True)
    @blp.response(200)
    def list_items(**args):
        since = args.get("since")
        return {
            "page": args["page"],
            "directive": args.get("directive"),
            "since": since.isoformat() if since else None,
        }

    @blp.route("/items", methods=["POST"])
    @require_roles("clerk")
    @blp.arguments(ItemIn)
    @blp.response(201)
    def create_item(body):
        return body

    @blp.route("/items/<item_id>")
    class Item(MethodView):
        @require_roles("auditor")
        @blp.doc(parameters=[{"in": "query", "name": "verbose", "schema": {"type": "boolean"}}])
        @blp.response(200)
        def get(self, item_id):
            return {"id": item_id}

        @require_roles("clerk")
        @blp.response(204)
        def delete(self, item_id):
            return None

    api.register_blueprint(blp)
    return app


@pytest.fixture
def client(tmp_path):
    return make_app(tmp_path).test_client()


def bearer(*roles: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_token(SECRET, sub='u1', roles=roles)}"}


def problem(response, status: int) -> dict:
    assert response.status_code == status, response.data
    assert response.content_type == "application/problem+json"
    return response.get_json(force=True)


# --- security headers (finding 13) -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/v1/items", bearer("auditor")),
        ("/v1/items", {}),  # 401
        ("/v1/nothing", bearer("auditor")),  # 404
        ("/healthz", {}),
        ("/openapi.json", {}),
        ("/metrics", {}),
    ],
)
def test_every_response_says_nosniff_and_a_strict_policy(client, path, headers):
    response = client.get(path, headers=headers)
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    csp = response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp
    assert "frame-ancestors 'none'" in csp


# --- /docs from the same origin (finding 19) ----------------------------------------------------------


def test_docs_page_references_only_same_origin_urls(client):
    response = client.get("/docs")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    urls = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert urls, html
    for url in urls:
        assert url.startswith("/"), url
        assert not url.startswith("//"), url
    assert "http://" not in html and "https://" not in html
    assert "<script>" not in html  # no inline script: the policy needs no 'unsafe-inline' for scripts
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp
    assert "unsafe-inline" not in csp.split("script-src", 1)[1].split(";", 1)[0]
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_docs_assets_are_served_from_the_pinned_package(client):
    html = client.get("/docs").get_data(as_text=True)
    scripts = re.findall(r'<script src="([^"]+)"', html)
    assert f"{DOCS_ASSET_PREFIX}swagger-ui-bundle.js" in scripts
    for url in re.findall(r'(?:src|href)="([^"]+)"', html):
        asset = client.get(url)
        assert asset.status_code == 200, url
        assert asset.data
    bundle = client.get(f"{DOCS_ASSET_PREFIX}swagger-ui-bundle.js")
    assert bundle.content_type.startswith("text/javascript")
    assert b"SwaggerUIBundle" in bundle.data
    assert re.fullmatch(r"v?\d+\.\d+\.\d+", swagger_ui_version())


def test_docs_serves_no_other_file(client):
    problem(client.get(f"{DOCS_ASSET_PREFIX}..%2fVERSION"), 404)
    problem(client.get(f"{DOCS_ASSET_PREFIX}oauth2-redirect.html"), 404)


# --- unknown query parameters (finding 22) ------------------------------------------------------------


def test_unknown_query_parameter_is_a_400_naming_it(client):
    body = problem(client.get("/v1/items?directive_id=abc&page=1", headers=bearer("auditor")), 400)
    assert list(body["errors"]) == ["directive_id"]
    assert "directive" in body["errors"]["directive_id"][0]
    assert "directive_id" in body["detail"]


def test_declared_query_parameters_are_accepted(client):
    response = client.get("/v1/items?directive=abc&page=2&per_page=5", headers=bearer("auditor"))
    assert response.status_code == 200
    assert response.get_json()["directive"] == "abc"


def test_operation_without_query_arguments_refuses_any(client):
    body = problem(client.post("/v1/items?x=1", json={"subject": "a"}, headers=bearer("clerk")), 400)
    assert list(body["errors"]) == ["x"]


def test_method_view_query_parameters_come_from_its_doc(client):
    assert client.get("/v1/items/7?verbose=true", headers=bearer("auditor")).status_code == 200
    body = problem(client.get("/v1/items/7?verbose=true&debug=1", headers=bearer("auditor")), 400)
    assert list(body["errors"]) == ["debug"]
    problem(client.delete("/v1/items/7?verbose=1", headers=bearer("clerk")), 400)


def test_nul_in_a_query_value_is_a_400(client):
    body = problem(client.get("/v1/items?directive=a%00b", headers=bearer("auditor")), 400)
    assert "directive" in body["errors"]


def test_unknown_parameters_do_not_bypass_authentication(client):
    problem(client.get("/v1/items?directive_id=1"), 401)


# --- 500s that were input errors (finding 16) ----------------------------------------------------------


def test_page_so_large_the_offset_overflows_is_refused(client):
    body = problem(client.get("/v1/items?page=100000000000000000", headers=bearer("auditor")), 422)
    assert "page" in body["errors"]
    ok = client.get(f"/v1/items?page={MAX_PAGE}", headers=bearer("auditor"))
    assert ok.status_code == 200


def test_datetime_that_overflows_in_utc_is_refused(client):
    url = "/v1/items?since=0001-01-01T00:00:00%2B14:00"
    body = problem(client.get(url, headers=bearer("auditor")), 422)
    assert "since" in body["errors"]
    ok = client.get("/v1/items?since=2026-01-01T00:00:00%2B07:00", headers=bearer("auditor"))
    assert ok.get_json()["since"] == "2026-01-01T00:00:00+07:00"


def test_lone_surrogate_in_json_is_a_400_naming_the_field(client):
    response = client.post(
        "/v1/items",
        data=b'{"subject": "ok", "tags": ["a", "x\\ud800y"]}',
        content_type="application/json",
        headers=bearer("clerk"),
    )
    body = problem(response, 400)
    assert list(body["errors"]) == ["tags[1]"]
    assert "surrogate" in body["errors"]["tags[1]"][0]


def test_nul_in_json_is_a_400_naming_the_field(client):
    response = client.post(
        "/v1/items",
        data=b'{"subject": "a\\u0000b"}',
        content_type="application/json",
        headers=bearer("clerk"),
    )
    assert list(problem(response, 400)["errors"]) == ["subject"]


def test_paired_surrogates_and_vietnamese_pass(client):
    response = client.post(
        "/v1/items",
        data='{"subject": "Kế hoạch \\ud83d\\udcc4 đợt 1"}'.encode(),
        content_type="application/json",
        headers=bearer("clerk"),
    )
    assert response.status_code == 201
    assert response.get_json()["subject"] == "Kế hoạch \U0001f4c4 đợt 1"


@pytest.mark.parametrize("depth", [100, 100_000])
def test_deeply_nested_json_is_a_4xx_without_a_logged_traceback(client, caplog, depth):
    data = b'{"subject": "a", "extra": ' + b"[" * depth + b"]" * depth + b"}"
    with caplog.at_level(logging.WARNING):
        response = client.post(
            "/v1/items", data=data, content_type="application/json", headers=bearer("clerk")
        )
    assert 400 <= response.status_code < 500
    assert response.content_type == "application/problem+json"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert all(r.exc_info is None for r in caplog.records)


def test_recursion_error_anywhere_becomes_a_400(tmp_path):
    app = make_app(tmp_path)

    @app.route("/v1/recurse", methods=["POST"])
    def recurse():
        raise RecursionError("maximum recursion depth exceeded")

    response = app.test_client().post("/v1/recurse", headers=bearer("clerk"))
    assert problem(response, 400)["type"].endswith("/nested-too-deeply")


def test_nul_in_a_path_parameter_is_a_400(client):
    body = problem(client.get("/v1/items/a%00b", headers=bearer("auditor")), 400)
    assert list(body["errors"]) == ["item_id"]


def test_docs_start_up_script_reaches_nothing_outside(client):
    script = client.get(f"{DOCS_ASSET_PREFIX}init.js")
    assert script.status_code == 200
    assert script.content_type.startswith("text/javascript")
    text = script.get_data(as_text=True)
    assert "://" not in text
    assert "validatorUrl: null" in text  # no badge fetched from the online validator
