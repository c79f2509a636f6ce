"""The archive's /openapi.json tells the truth: bodies, 2xx schemas and every error each operation answers."""

from __future__ import annotations

import importlib.util

import pytest

# operation → (2xx status, its media type, the errors it can answer besides 401/403)
OPERATIONS = {
    ("get", "/v1/records"): ("200", "application/json", {"400", "422"}),
    ("get", "/v1/records/{record_id}"): ("200", "application/json", {"400", "404"}),
    ("get", "/v1/records/{record_id}/content"): ("200", "*/*", {"400", "404", "409", "503"}),
    ("post", "/v1/records/{record_id}/fixity"): ("200", "application/json", {"400", "404", "503"}),
    ("put", "/v1/records/{record_id}/legal-hold"): (
        "200",
        "application/json",
        {"400", "404", "409", "422", "503"},
    ),
    ("get", "/v1/fixity/runs"): ("200", "application/json", {"400", "422"}),
    ("get", "/v1/audit"): ("200", "application/json", {"400", "422"}),
    ("get", "/v1/audit/verify"): ("200", "application/json", {"400", "503"}),
    ("get", "/v1/directives/{directive_id}/package"): (
        "200",
        "application/zip",
        {"400", "404", "409", "503"},
    ),
}


@pytest.fixture
def spec(client):
    resp = client.get("/openapi.json")
    assert resp.status_code == 200
    return resp.json


def _operations(spec):
    for path, item in spec["paths"].items():
        if not path.startswith("/v1"):
            continue
        for method, operation in item.items():
            if method in ("get", "put", "post", "delete", "patch"):
                yield (method, path), operation


def test_every_archive_operation_is_listed(spec):
    assert {key for key, _ in _operations(spec)} == set(OPERATIONS)


@pytest.mark.parametrize("key", sorted(OPERATIONS))
def test_each_operation_documents_its_success_body_and_its_errors(spec, key):
    operation = dict(_operations(spec))[key]
    success, media_type, errors = OPERATIONS[key]
    responses = operation["responses"]
    body = responses[success]["content"][media_type]
    assert body["schema"], f"{key}: {success} has no schema"
    if media_type == "application/json":
        assert "$ref" in body["schema"] or body["schema"].get("type") == "object"
    else:
        assert body["schema"] == {"type": "string", "format": "binary"}
    missing = errors - set(responses)
    assert not missing, f"{key} does not document {sorted(missing)}"
    for code in errors:
        assert responses[code], f"{key}: {code} is empty"


def test_the_record_and_verify_schemas_carry_what_the_api_now_returns(spec):
    schemas = spec["components"]["schemas"]
    record = next(
        s
        for name, s in schemas.items()
        if name.startswith("Record") and "content_flags" in s.get("properties", {})
    )
    assert record["properties"]["content_flags"]["type"] == "array"
    verify = next(s for s in schemas.values() if "checkpoints_checked" in s.get("properties", {}))
    assert {"problems", "unindexed", "checkpoint", "ok"} <= set(verify["properties"])


def test_the_legal_hold_body_is_documented(spec):
    operation = dict(_operations(spec))[("put", "/v1/records/{record_id}/legal-hold")]
    body = operation["requestBody"]["content"]["application/json"]["schema"]
    assert body["$ref"].endswith("/LegalHoldIn")
    schema = spec["components"]["schemas"]["LegalHoldIn"]
    assert set(schema["required"]) == {"legal_hold", "reason"}


@pytest.mark.skipif(
    importlib.util.find_spec("shared.openapi") is None,
    reason="the shared problem+json documentation (shared.openapi) lands with another branch",
)
def test_every_error_is_documented_as_problem_json(spec):
    components = spec["components"].get("responses", {})
    for key, operation in _operations(spec):
        for code, response in operation["responses"].items():
            if code != "default" and int(code) < 400:
                continue
            if "$ref" in response:
                response = components[response["$ref"].rsplit("/", 1)[-1]]
            assert list(response["content"]) == ["application/problem+json"], (key, code)
