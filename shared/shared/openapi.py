"""What every service's OpenAPI document says about errors (RFC 9457 problem+json) and the public probes."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

import marshmallow as ma
from apispec import APISpec, BasePlugin
from flask import Flask

from shared.problems import PROBLEM_CONTENT_TYPE

__all__ = [
    "PROBE_PATHS",
    "PROBLEM_SCHEMA_NAME",
    "ProblemResponsesPlugin",
    "ProblemSchema",
    "document_probes",
    "problem_content",
    "register_problem_responses",
]

PROBLEM_SCHEMA_NAME = "Problem"
PROBLEM_REF = f"#/components/schemas/{PROBLEM_SCHEMA_NAME}"
DEFAULT_ERROR = "DEFAULT_ERROR"
_HTTP_METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})


class ProblemSchema(ma.Schema):
    """An RFC 9457 problem: the body of every docroute error response (documentation only)."""

    class Meta:
        # Problems carry extension members (existing_id, checks, ...): the document must allow them.
        unknown = ma.INCLUDE

    type = ma.fields.String(
        required=True,
        metadata={
            "description": "URI naming the problem type, e.g. https://docroute.example/problems/validation-error",
            "example": "https://docroute.example/problems/validation-error",
        },
    )
    title = ma.fields.String(required=True, metadata={"description": "Short summary of the problem type"})
    status = ma.fields.Integer(
        required=True,
        validate=ma.validate.Range(min=100, max=599),
        metadata={"description": "The HTTP status code, repeated in the body"},
    )
    detail = ma.fields.String(metadata={"description": "What went wrong with this request, for a person"})
    instance = ma.fields.String(metadata={"description": "URI of this occurrence, when there is one"})
    errors = ma.fields.Dict(
        keys=ma.fields.String(),
        values=ma.fields.List(ma.fields.String()),
        metadata={
            "description": "Validation errors: field path (dotted for nested fields, `_schema` for the whole "
            "body, `json`/`query`/`form` for the location) → messages",
            "example": {"subject": ["Missing data for required field."]},
        },
    )


def problem_content() -> dict[str, Any]:
    """The `content` of an error response: problem+json with the Problem schema."""
    return {PROBLEM_CONTENT_TYPE: {"schema": {"$ref": PROBLEM_REF}}}


_WWW_AUTHENTICATE = {
    "description": 'The RFC 6750 challenge, `Bearer realm="docroute"`',
    "schema": {"type": "string"},
}


def register_problem_responses(spec: APISpec) -> None:
    """The Problem schema, and a problem+json component response per HTTP error status plus DEFAULT_ERROR.

    flask-smorest would register these as application/json with its own `Error {code, status, message,
    errors}` schema, which no docroute response follows.
    """
    spec.components.schema(PROBLEM_SCHEMA_NAME, schema=ProblemSchema)
    for status in HTTPStatus:
        if status < 400:
            continue
        response: dict[str, Any] = {"description": status.phrase, "content": problem_content()}
        if status == HTTPStatus.UNAUTHORIZED:
            response["headers"] = {"WWW-Authenticate": _WWW_AUTHENTICATE}
        spec.components.response(status.name, response, lazy=True)
    spec.components.response(
        DEFAULT_ERROR,
        {"description": "Error (RFC 9457 problem+json)", "content": problem_content()},
        lazy=True,
    )


class ProblemResponsesPlugin(BasePlugin):
    """Makes every operation's error responses problem+json, and documents 401/403 on authenticated ones.

    A service documents an error with `alt_response(409, description=...)`; this fills in the body's media
    type and schema, so no error response can be left undescribed or described as plain JSON.
    """

    def init_spec(self, spec: APISpec) -> None:
        self.spec = spec

    def operation_helper(
        self, path: str | None = None, operations: dict[str, Any] | None = None, **kwargs: Any
    ) -> None:
        for method, operation in (operations or {}).items():
            if method not in _HTTP_METHODS or not isinstance(operation, dict):
                continue
            responses = operation.setdefault("responses", {})
            for code, response in list(responses.items()):
                if _is_error(code) and isinstance(response, dict):
                    content = response.setdefault("content", {})
                    # A schema documented for the error (a Problem with extension members) is kept, under
                    # the media type the body really has.
                    given = content.pop("application/json", {}).get("schema")
                    content.setdefault(PROBLEM_CONTENT_TYPE, {"schema": given or {"$ref": PROBLEM_REF}})
            responses.setdefault("default", DEFAULT_ERROR)
            if operation.get("security") != [] and (path or "").startswith("/v1"):
                # Every /v1 route authenticates before anything else and checks roles.
                responses.setdefault("401", HTTPStatus.UNAUTHORIZED.name)
                responses.setdefault("403", HTTPStatus.FORBIDDEN.name)


def _is_error(code: object) -> bool:
    text = str(code)
    return text == "default" or (text.isdigit() and int(text) >= 400)


# One readiness check's result: "ok", "failed: <error>", or an object saying more (status "ok" plus details).
CHECK_RESULT: dict[str, Any] = {
    "oneOf": [
        {"type": "string"},
        {
            "type": "object",
            "properties": {"status": {"type": "string", "enum": ["ok"]}},
            "required": ["status"],
        },
    ]
}


PROBE_PATHS: Mapping[str, dict[str, Any]] = {
    "/healthz": {
        "get": {
            "tags": ["probes"],
            "summary": "Liveness: the process answers (checks nothing else)",
            "security": [],
            "responses": {
                "200": {
                    "description": "Alive",
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "properties": {"status": {"type": "string", "enum": ["ok"]}},
                                "required": ["status"],
                            }
                        }
                    },
                },
                "default": DEFAULT_ERROR,
            },
        }
    },
    "/readyz": {
        "get": {
            "tags": ["probes"],
            "summary": "Readiness: every dependency the service needs answers",
            "security": [],
            "responses": {
                "200": {
                    "description": "Ready; `checks` maps each dependency to `ok`, or to an object with "
                    "`status: ok` and what the check found (the archive's object store: its capabilities "
                    "and write plan)",
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "properties": {
                                    "status": {"type": "string", "enum": ["ready"]},
                                    "checks": {"type": "object", "additionalProperties": CHECK_RESULT},
                                },
                                "required": ["status", "checks"],
                            }
                        }
                    },
                },
                "503": {
                    "description": "Not ready: a problem whose `checks` member says which dependency failed",
                    "headers": {"Retry-After": {"schema": {"type": "integer"}}},
                    "content": {
                        PROBLEM_CONTENT_TYPE: {
                            "schema": {
                                "allOf": [
                                    {"$ref": PROBLEM_REF},
                                    {
                                        "type": "object",
                                        "properties": {
                                            "checks": {"type": "object", "additionalProperties": CHECK_RESULT}
                                        },
                                    },
                                ]
                            }
                        }
                    },
                },
                "default": DEFAULT_ERROR,
            },
        }
    },
    "/metrics": {
        "get": {
            "tags": ["probes"],
            "summary": "Prometheus metrics in the text exposition format",
            "security": [],
            "responses": {
                "200": {
                    "description": "Metrics (text/plain; version=0.0.4)",
                    "content": {"text/plain": {"schema": {"type": "string"}}},
                },
                "default": DEFAULT_ERROR,
            },
        }
    },
}


def document_probes(spec: APISpec, app: Flask) -> None:
    """Document the public /healthz, /readyz and /metrics routes of `app` (every service serves them)."""
    spec.tag({"name": "probes", "description": "Health, readiness and metrics; no token needed"})
    rules = {rule.rule: rule for rule in app.url_map.iter_rules()}
    for path, operations in PROBE_PATHS.items():
        if path in rules:
            # flask-smorest's path helper derives the path from the Flask rule.
            spec.path(rule=rules[path], operations=copy.deepcopy(dict(operations)))
