"""How routing's operations describe their request bodies and error answers in /openapi.json."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from flask_smorest import Blueprint
from marshmallow import Schema
from shared.problems import PROBLEM_CONTENT_TYPE

from routing.api.responses import ProblemDetails
from routing.api.schemas import StatusForm, StatusIn

V = TypeVar("V", bound=Callable[..., Any])

ERRORS: dict[int, str] = {
    400: "An undeclared or malformed query parameter (errors names it)",
    401: "No bearer token, or one that is invalid or expired",
    403: "The token's roles do not allow this; a token with a unit claim acting beyond its unit; an auditor "
    "writing; a deactivated unit's token",
    404: "Not found (another unit's task or queue answers the same as a missing one)",
    409: "The task's status does not allow this change",
    413: "The body is over its size limit",
    415: "Send application/yaml or application/json",
    422: "A field is invalid: errors names each (rule sets: issues lists rule, field and message)",
    429: "Too many long-polls waiting (for the unit or this server process): poll again after Retry-After",
    502: "The stored file is missing or does not match its SHA-256",
    503: "The object store or the broker is unavailable",
}
BINARY = {"type": "string", "format": "binary"}
YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml")


def problems(blp: Blueprint, *codes: int) -> Callable[[V], V]:
    """Documents the problem+json answers of an operation: 401 and 403 always, then `codes`."""

    def decorate(view: V) -> V:
        for code in sorted({401, 403, *codes}, reverse=True):
            view = blp.alt_response(
                code, schema=ProblemDetails, content_type=PROBLEM_CONTENT_TYPE, description=ERRORS[code]
            )(view)
        return view

    return decorate


def json_body(schema: type[Schema], *, required: bool = True) -> dict[str, Any]:
    """A JSON request body, parsed by the view itself (which names each field at fault in a 422)."""
    return {"required": required, "content": {"application/json": {"schema": schema}}}


def document_body(schema: type[Schema]) -> dict[str, Any]:
    """A document sent as YAML (plain data) or JSON; at most 1 MiB."""
    content: dict[str, Any] = {media: {"schema": schema} for media in YAML_TYPES}
    content["application/json"] = {"schema": schema}
    return {"required": True, "content": content}


def status_body() -> dict[str, Any]:
    return {
        "required": True,
        "content": {"application/json": {"schema": StatusIn}, "multipart/form-data": {"schema": StatusForm}},
    }
