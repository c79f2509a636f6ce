"""Intake's OpenAPI document tells the truth: bodies and responses with schemas, every error declared."""

from __future__ import annotations

import pytest
from intake_testing import IntakeApp

OPERATIONS = {
    ("/v1/directives", "post"): ({"201"}, {"400", "409", "413", "415", "422", "503"}),
    ("/v1/directives", "get"): ({"200"}, {"400", "422"}),
    ("/v1/directives/{directive_id}", "get"): ({"200"}, {"400", "404"}),
    ("/v1/directives/{directive_id}/attachments/{attachment_id}", "get"): ({"200"}, {"400", "404", "503"}),
    ("/v1/register.csv", "get"): ({"200"}, {"400", "422"}),
    ("/v1/edxml", "post"): ({"201", "200"}, {"400", "404", "409", "413", "415", "422", "503"}),
    ("/v1/directives/{directive_id}/packet", "get"): ({"200"}, {"400", "404", "503"}),
    ("/v1/directives/{directive_id}/edxml", "get"): ({"200"}, {"400", "404", "503"}),
    ("/v1/directives/{directive_id}:revoke", "post"): ({"200"}, {"400", "404", "409", "422", "503"}),
    ("/v1/directives/{directive_id}", "patch"): ({"200"}, {"400", "404", "409", "413", "415", "422", "503"}),
    ("/v1/directives/{directive_id}/revisions", "get"): ({"200"}, {"400", "404"}),
    ("/v1/directives/{directive_id}:replace", "post"): (
        {"201"},
        {"400", "404", "409", "413", "415", "422", "503"},
    ),
    ("/v1/directives/{directive_id}:reject", "post"): ({"200"}, {"400", "404", "409", "422", "503"}),
    ("/v1/status-updates", "get"): ({"200"}, {"400", "422", "503"}),
    ("/v1/directives/{directive_id}/status-updates", "get"): ({"200"}, {"400", "404", "422", "503"}),
    ("/v1/subscriptions", "post"): ({"201"}, {"400", "422", "503"}),
    ("/v1/subscriptions", "get"): ({"200"}, {"400", "503"}),
    ("/v1/subscriptions/{subscription_id}", "get"): ({"200"}, {"400", "404", "503"}),
    ("/v1/subscriptions/{subscription_id}", "delete"): (set(), {"400", "404", "503"}),
    ("/v1/subscriptions/{subscription_id}/dead-letters", "get"): ({"200"}, {"400", "404", "503"}),
    ("/v1/subscriptions/{subscription_id}/dead-letters:replay", "post"): (
        {"200"},
        {"400", "404", "422", "503"},
    ),
}


@pytest.fixture
def spec(intake: IntakeApp) -> dict:
    return intake.client.get("/openapi.json").get_json()


def test_every_intake_operation_is_documented(spec: dict) -> None:
    documented = {
        (path, method)
        for path, operations in spec["paths"].items()
        if path.startswith("/v1")
        for method in operations
        if method != "parameters"
    }
    assert documented == set(OPERATIONS)


@pytest.mark.parametrize(("path", "method"), list(OPERATIONS))
def test_success_has_a_body_schema_and_every_error_is_declared(spec: dict, path: str, method: str) -> None:
    success, errors = OPERATIONS[(path, method)]
    responses = spec["paths"][path][method]["responses"]
    for code in success:
        content = responses[code]["content"]
        assert content and all("schema" in media for media in content.values()), (code, content)
    assert errors <= set(responses), errors - set(responses)


def test_the_submission_bodies_are_described(spec: dict) -> None:
    operation = spec["paths"]["/v1/directives"]["post"]
    content = operation["requestBody"]["content"]
    assert set(content) == {"multipart/form-data", "application/json"}
    schemas = spec["components"]["schemas"]
    json_schema = schemas[content["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]]
    assert {"issuer", "number", "subject", "attachments"} <= set(json_schema["properties"])
    assert json_schema["properties"]["number"]["maxLength"] == 60
    headers = operation["responses"]["201"]["headers"]
    assert "Location" in headers
    assert "Retry-After" in operation["responses"]["503"]["headers"]


def test_downloads_document_each_type_they_are_served_as(spec: dict) -> None:
    from attachment_rules import ACCEPTED_CONTENT_TYPES

    path = "/v1/directives/{directive_id}/attachments/{attachment_id}"
    content = spec["paths"][path]["get"]["responses"]["200"]["content"]
    assert set(content) == ACCEPTED_CONTENT_TYPES
    assert "text/html" not in content


def test_the_document_is_valid_openapi(spec: dict) -> None:
    from openapi_spec_validator import validate

    validate(spec)
