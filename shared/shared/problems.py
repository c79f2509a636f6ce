"""RFC 9457 problem+json: the Problem exception and the rendering of every error a docroute app can raise."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from flask import Response
from werkzeug.exceptions import HTTPException

PROBLEM_BASE = "https://docroute.example/problems/"
PROBLEM_CONTENT_TYPE = "application/problem+json"

# (status, slug, title) per exception class; the exception's str() is the detail.
ErrorTable = dict[type[Exception], tuple[int, str, str]]

log = logging.getLogger(__name__)

# Headers of werkzeug's own error responses that must not survive into ours.
_DROPPED_HEADERS = frozenset({"content-type", "content-length"})


def problem_type(slug: str) -> str:
    """The `type` URI of a problem slug (a full URI is kept as it is)."""
    return slug if "://" in slug or slug == "about:blank" else PROBLEM_BASE + slug


def _status_slug(status: int) -> str:
    try:
        return HTTPStatus(status).phrase.lower().replace(" ", "-").replace("'", "")
    except ValueError:
        return "error"


def _status_title(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


class Problem(Exception):
    """An error that becomes an `application/problem+json` response as it is."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str | None = None,
        *,
        type: str | None = None,
        errors: Mapping[str, list[str]] | None = None,
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(detail or title)
        self.status = status
        self.title = title
        self.detail = detail
        self.type = problem_type(type or _status_slug(status))
        self.errors = dict(errors) if errors is not None else None
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})

    def body(self) -> dict[str, Any]:
        # Extra members come first so they can never overwrite the RFC members.
        payload: dict[str, Any] = dict(self.extra)
        payload.update({"type": self.type, "title": self.title, "status": self.status})
        if self.detail is not None:
            payload["detail"] = self.detail
        if self.errors is not None:
            payload["errors"] = self.errors
        return payload

    def to_response(self) -> Response:
        body = self.body()
        try:
            data = json.dumps(body, ensure_ascii=False, default=str).encode("utf-8")
        except UnicodeEncodeError:
            # A detail quoting the caller's input may hold an unpaired surrogate, which UTF-8 cannot carry:
            # JSON's \u escapes can, so the problem still goes out instead of failing into a 500.
            data = json.dumps(body, ensure_ascii=True, default=str).encode("ascii")
        response = Response(data, status=self.status, content_type=PROBLEM_CONTENT_TYPE)
        for name, value in self.headers.items():
            response.headers[name] = value
        return response


def flatten_validation_messages(messages: Any) -> dict[str, list[str]]:
    """Turn webargs' `{location: {field: msgs | {nested: ...}}}` into `{"field.nested": [msgs]}`."""
    errors: dict[str, list[str]] = {}
    if isinstance(messages, Mapping):
        for location, value in messages.items():
            if isinstance(value, Mapping):
                _flatten_into(errors, "", value)
            else:
                # A location-level message such as webargs' "Invalid JSON body." has no field.
                errors.setdefault(str(location), []).extend(_as_strings(value))
    elif messages is not None:
        errors["_schema"] = _as_strings(messages)
    return errors


def _flatten_into(errors: dict[str, list[str]], prefix: str, value: Mapping[Any, Any]) -> None:
    for key, inner in value.items():
        # A nested schema-level message belongs to the nested field itself ("issuer"), not "_schema".
        path = (prefix.rstrip(".") or "_schema") if key == "_schema" else f"{prefix}{key}"
        if isinstance(inner, Mapping):
            _flatten_into(errors, f"{path}.", inner)
        else:
            errors.setdefault(path, []).extend(_as_strings(inner))


def _as_strings(value: Any) -> list[str]:
    if isinstance(value, list | tuple):
        out: list[str] = []
        for item in value:
            out.extend(_as_strings(item) if isinstance(item, list | tuple) else [str(item)])
        return out
    return [str(value)]


def _from_http_exception(exc: HTTPException) -> Problem:
    status = exc.code or 500
    headers = {name: value for name, value in exc.get_headers() if name.lower() not in _DROPPED_HEADERS}
    data = getattr(exc, "data", None)
    if isinstance(data, Mapping):
        headers.update(data.get("headers") or {})
        messages = data.get("errors", data.get("messages"))
        if messages is not None:
            errors = flatten_validation_messages(messages)
            count = sum(len(v) for v in errors.values())
            return Problem(
                status,
                "Validation failed" if status in (400, 422) else _status_title(status),
                data.get("message") or f"The request has {count} invalid field value(s).",
                type="validation-error" if status in (400, 422) else None,
                errors=errors,
                headers=headers,
            )
        if data.get("message"):
            return Problem(status, _status_title(status), str(data["message"]), headers=headers)
    return Problem(status, _status_title(status), exc.description, headers=headers)


def _from_error_table(
    exc: Exception, error_table: Mapping[type[Exception], tuple[int, str, str]]
) -> Problem | None:
    # The most specific class wins, so a table may map a base error and override one subclass.
    for cls in type(exc).__mro__:
        entry = error_table.get(cls)
        if entry is None:
            continue
        status, slug, title = entry
        detail = str(exc) or title
        field = getattr(exc, "field", None)
        errors = {str(field): [detail]} if field is not None else None
        extra = getattr(exc, "problem_extra", None)
        return Problem(
            status,
            title,
            detail,
            type=slug,
            errors=errors,
            extra=extra if isinstance(extra, Mapping) else None,
        )
    return None


def to_problem(
    exc: BaseException, error_table: Mapping[type[Exception], tuple[int, str, str]] | None = None
) -> Problem:
    """The Problem for any exception: ours, werkzeug's, webargs', the app's error table, or a generic 500."""
    if isinstance(exc, Problem):
        return exc
    if isinstance(exc, HTTPException) and exc.code is not None and exc.code != 500:
        return _from_http_exception(exc)
    if isinstance(exc, HTTPException):
        original = getattr(exc, "original_exception", None)
        if isinstance(original, Exception):
            return to_problem(original, error_table)
    if isinstance(exc, RecursionError):
        # Input nested deeper than a parser can follow (JSON, YAML): the caller's fault, and a traceback of
        # a thousand identical frames helps nobody, so one line is logged instead.
        log.warning("refused input nested too deeply to parse: %s", exc)
        return Problem(
            400,
            "Input nested too deeply",
            "the request nests objects or lists deeper than the server follows",
            type="nested-too-deeply",
        )
    if isinstance(exc, Exception) and error_table:
        mapped = _from_error_table(exc, error_table)
        if mapped is not None:
            return mapped
    log.error("unhandled error: %s", type(exc).__name__, exc_info=exc)
    return Problem(
        500,
        "Internal Server Error",
        "The server failed to handle the request; it has been logged.",
        type="internal-error",
    )


def render_problem(
    exc: BaseException, error_table: Mapping[type[Exception], tuple[int, str, str]] | None = None
) -> Response:
    """The problem+json response for any exception."""
    return to_problem(exc, error_table).to_response()
