"""The OpenAPI documents tell the truth about errors (problem+json, the Problem schema) and the probes."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import jsonschema
import pytest
from openapi_spec_validator import validate as validate_openapi
from shared.problems import PROBLEM_CONTENT_TYPE
from test_web import bearer, make_app

HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options"}


def document(app) -> dict[str, Any]:
    response = app.test_client().get("/openapi.json")
    assert response.status_code == 200
    return response.get_json()


def resolve(doc: dict[str, Any], node: Any) -> Any:
    while isinstance(node, dict) and "$ref" in node:
        section, kind, name = node["$ref"].removeprefix("#/").split("/")
        node = doc[section][kind][name]
    return node


def error_responses(doc: dict[str, Any]) -> Iterator[tuple[str, str, str, dict[str, Any]]]:
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            if method not in HTTP_METHODS:
                continue
            for code, response in operation["responses"].items():
                if code == "default" or int(code) >= 400:
                    yield path, method, code, resolve(doc, response)


def problem_validator(doc: dict[str, Any]) -> jsonschema.Draft7Validator:
    # The document's schemas, addressable by their $ref, for validating real bodies against them.
    schema = {"$ref": "#/components/schemas/Problem", "components": doc["components"]}
    return jsonschema.Draft7Validator(schema)


def test_every_error_response_is_documented_as_problem_json(tmp_path):
    doc = document(make_app(tmp_path))
    assert "Error" not in doc["components"]["schemas"]  # flask-smorest's {code, status: string, message}
    problem = doc["components"]["schemas"]["Problem"]
    assert problem["properties"]["status"]["type"] == "integer"
    assert set(problem["required"]) == {"type", "title", "status"}
    seen = 0
    for path, method, code, response in error_responses(doc):
        assert list(response["content"]) == [PROBLEM_CONTENT_TYPE], (path, method, code)
        seen += 1
    assert seen >= 4
    post = doc["paths"]["/v1/directives"]["post"]["responses"]
    assert {"401", "403", "default"} <= set(post)
    assert "WWW-Authenticate" in resolve(doc, post["401"])["headers"]


def test_probes_are_documented_and_public(tmp_path):
    doc = document(make_app(tmp_path))
    for path in ("/healthz", "/readyz", "/metrics"):
        operation = doc["paths"][path]["get"]
        assert operation["security"] == []
        assert "200" in operation["responses"]
    assert "text/plain" in doc["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    assert "503" in doc["paths"]["/readyz"]["get"]["responses"]


def test_real_error_bodies_follow_the_documented_schema(tmp_path):
    def broken() -> None:
        raise ConnectionError("database away")

    app = make_app(tmp_path, readiness={"database": broken})
    doc = document(app)
    validator = problem_validator(doc)
    client = app.test_client()
    answers = [
        client.post("/v1/directives", json={}),  # 401
        client.get("/v1/directives", headers=bearer("clerk")),  # 403
        client.post("/v1/directives", json={"subject": 1}, headers=bearer("clerk")),  # 422 with errors
        client.post(
            "/v1/directives",
            json={"subject": "trùng", "issuer": {"name": "a", "code": "b"}},
            headers=bearer("clerk"),
        ),  # 409 from the error table
        client.get("/v1/nowhere", headers=bearer("clerk")),  # 404
        client.get("/readyz"),  # 503 with checks
    ]
    assert [a.status_code for a in answers] == [401, 403, 422, 409, 404, 503]
    for answer in answers:
        assert answer.content_type == PROBLEM_CONTENT_TYPE
        validator.validate(answer.get_json(force=True))
    health = client.get("/healthz").get_json()
    jsonschema.validate(
        health, doc["paths"]["/healthz"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    )


@pytest.mark.parametrize("service", ["intake", "routing", "archive"])
def test_each_service_documents_errors_as_problems_and_its_probes(service, tmp_path, monkeypatch):
    monkeypatch.setenv("DOCROUTE_DATA_DIR", str(tmp_path))
    for name in [k for k in os.environ if k.startswith("DOCROUTE_") and k != "DOCROUTE_DATA_DIR"]:
        monkeypatch.delenv(name)
    module = __import__(f"{service}.api", fromlist=["create_app"])
    app = module.create_app()
    doc = document(app)
    validate_openapi(doc)  # a valid OpenAPI 3.0 document: what client generators and schemathesis read
    assert "Error" not in doc["components"]["schemas"]
    for path, method, code, response in error_responses(doc):
        assert list(response.get("content", {})) == [PROBLEM_CONTENT_TYPE], (path, method, code)
    assert {"/healthz", "/readyz", "/metrics"} <= set(doc["paths"])
    for path, item in doc["paths"].items():
        if path.startswith("/v1"):
            for method, operation in item.items():
                if method in HTTP_METHODS:
                    assert {"401", "403", "default"} <= set(operation["responses"]), (path, method)


def test_an_error_schema_a_service_documents_is_kept_as_problem_json(tmp_path):
    import marshmallow as ma
    from flask.views import MethodView
    from flask_smorest import Blueprint
    from shared.openapi import ProblemSchema
    from shared.settings import CommonSettings
    from shared.web import create_base_app

    class ConflictProblem(ProblemSchema):
        existing_id = ma.fields.String()

    settings = CommonSettings.from_env({"DOCROUTE_DATA_DIR": str(tmp_path), "DOCROUTE_JWT_SECRET": "s" * 40})
    app, api = create_base_app("intake", settings=settings, verifier=None)  # type: ignore[arg-type]
    blp = Blueprint("things", __name__, url_prefix="/v1/things")

    @blp.route("")
    class Things(MethodView):
        @blp.response(201)
        @blp.alt_response(409, schema=ConflictProblem, description="Already there")
        def post(self):
            return {}

    api.register_blueprint(blp)
    doc = document(app)
    conflict = doc["paths"]["/v1/things"]["post"]["responses"]["409"]
    assert list(conflict["content"]) == [PROBLEM_CONTENT_TYPE]
    assert conflict["content"][PROBLEM_CONTENT_TYPE]["schema"] == {
        "$ref": "#/components/schemas/ConflictProblem"
    }
