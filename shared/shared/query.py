"""Query strings of every docroute API: bounded page fields, safe datetimes, refusal of unknown parameters.

Every service declares its query parameters through flask-smorest (`@blp.arguments(..., location="query")`
or a `parameters` entry of `@blp.doc`). A parameter nobody declared is refused here, once for all services,
instead of being ignored: `?directive_id=` where the filter is `directive` must not answer every record.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from marshmallow import Schema, fields, validate

from shared.problems import Problem

__all__ = [
    "MAX_PAGE",
    "SafeAwareDateTime",
    "declared_query_parameters",
    "page_number",
    "page_size",
    "refuse_bad_query",
    "refuse_nul_in_path",
]

# Deep enough for any register a province keeps (a million pages), small enough that (page - 1) * per_page
# stays far inside a 64-bit OFFSET on SQLite and PostgreSQL for any per_page cap the services use.
MAX_PAGE = 1_000_000


def page_number() -> fields.Integer:
    """The `page` query field: 1-based, at most MAX_PAGE (a larger value overflowed the SQL OFFSET)."""
    return fields.Integer(load_default=1, validate=validate.Range(min=1, max=MAX_PAGE))


def page_size(default: int, maximum: int) -> fields.Integer:
    """The `per_page` query field, 1..maximum."""
    return fields.Integer(load_default=default, validate=validate.Range(min=1, max=maximum))


class SafeAwareDateTime(fields.AwareDateTime):
    """An ISO 8601 datetime with offset that can also be expressed in UTC.

    `0001-01-01T00:00:00+14:00` parses, but lies before year 1 in UTC: every comparison with a stored UTC
    time then raised OverflowError (a 500). It is refused as a validation error naming the field.
    """

    default_error_messages = {  # noqa: RUF012 - marshmallow merges this class attribute
        "out_of_range": "must lie between years 1 and 9999 once converted to UTC",
    }

    def _deserialize(
        self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any
    ) -> Any:
        parsed = super()._deserialize(value, attr, data, **kwargs)
        if isinstance(parsed, datetime):
            try:
                parsed.astimezone(UTC)
            except OverflowError:
                raise self.make_error("out_of_range") from None
        return parsed


def _schema_names(schema: Any) -> set[str]:
    if isinstance(schema, type) and issubclass(schema, Schema):
        schema = schema()
    if not isinstance(schema, Schema):
        return set()
    return {field.data_key or name for name, field in schema.fields.items() if not field.dump_only}


def declared_query_parameters(view: Callable[..., Any]) -> frozenset[str]:
    """The query parameter names an operation documents (none for a view that documents nothing)."""
    apidoc = getattr(view, "_apidoc", None)
    if not isinstance(apidoc, Mapping):
        return frozenset()
    names: set[str] = set()
    for parameter in apidoc.get("arguments", {}).get("parameters", []):
        if isinstance(parameter, Mapping) and parameter.get("in") in ("query", "querystring"):
            names |= _schema_names(parameter.get("schema"))
    for parameter in apidoc.get("manual_doc", {}).get("parameters", []):
        if isinstance(parameter, Mapping) and parameter.get("in") == "query" and "name" in parameter:
            names.add(str(parameter["name"]))
    return frozenset(names)


def operation_of(view: Callable[..., Any], method: str) -> Callable[..., Any]:
    """The function that documents one method of a route (the MethodView method for class-based views)."""
    view_class = getattr(view, "view_class", None)
    if view_class is None:
        return view
    name = "get" if method == "HEAD" else method.lower()
    handler: Callable[..., Any] | None = getattr(view_class, name, None)
    return handler if handler is not None else view


def refuse_bad_query(args: Iterable[tuple[str, str]], declared: frozenset[str]) -> None:
    """Raises a 400 Problem naming every undeclared parameter, or every value holding a NUL character.

    NUL is refused for all parameters because PostgreSQL cannot store or compare text holding it (the
    query failed with a 500), and no docroute filter has a use for it.
    """
    errors: dict[str, list[str]] = {}
    for name, value in args:
        if name not in declared:
            accepted = ", ".join(sorted(declared)) or "none"
            errors.setdefault(name, []).append(f"unknown query parameter; this operation accepts: {accepted}")
        elif "\x00" in value or "\x00" in name:
            errors.setdefault(name, []).append("must not contain a NUL character")
    if errors:
        unknown = sorted(name for name, messages in errors.items() if messages[0].startswith("unknown"))
        detail = (
            f"unknown query parameter(s): {', '.join(unknown)}"
            if unknown
            else "a query parameter holds a NUL character"
        )
        raise Problem(400, "Bad query string", detail, type="invalid-query", errors=errors)


def refuse_nul_in_path(view_args: Mapping[str, Any] | None) -> None:
    """Raises a 400 Problem for a path parameter holding a NUL character (PostgreSQL cannot compare it)."""
    bad = {
        name: ["must not contain a NUL character"]
        for name, value in (view_args or {}).items()
        if isinstance(value, str) and "\x00" in value
    }
    if bad:
        raise Problem(
            400, "Bad path", "a path parameter holds a NUL character", type="invalid-path", errors=bad
        )
