"""Recipient units: code and name validation, and parsing of the units document (samples/units.yaml)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from routing.domain.errors import InvalidUnit
from routing.domain.text import nfc

CODE_RE = re.compile(r"^[A-Z0-9][A-Z0-9._-]{0,63}$")
GROUP_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
MAX_NAME = 300
UNIT_FIELDS = frozenset({"code", "name", "groups", "tags", "active"})
MAX_LABELS = 50  # groups, and tags, of one unit
MAX_TAG = 64


@dataclass(frozen=True)
class Unit:
    """A recipient unit; `groups` address it from rules, `tags` are free labels."""

    code: str
    name: str
    groups: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    active: bool = True
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False)

    def same_definition(self, other: Unit) -> bool:
        return (self.name, self.groups, self.tags, self.active) == (
            other.name,
            other.groups,
            other.tags,
            other.active,
        )


def validate_code(code: object, *, field_name: str = "code") -> str:
    if not isinstance(code, str) or not CODE_RE.match(code):
        raise InvalidUnit(
            f"unit code {code!r} must match {CODE_RE.pattern} (upper-case letters, digits, . _ -)",
            field=field_name,
        )
    return code


def _str_list(value: object, field_name: str, pattern: re.Pattern[str] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidUnit("must be a list of strings", field=field_name)
    if len(value) > MAX_LABELS or any(len(v) > MAX_TAG for v in value):
        raise InvalidUnit(f"at most {MAX_LABELS} entries of at most {MAX_TAG} characters", field=field_name)
    out: list[str] = []
    for v in value:
        if pattern is not None and not pattern.match(v):
            raise InvalidUnit(f"{v!r} must match {pattern.pattern}", field=field_name)
        if v not in out:
            out.append(v)
    return tuple(out)


def parse_unit(raw: object, *, where: str = "", code: str | None = None) -> Unit:
    """Validates one unit mapping; `code` (from a URL) wins over the body's when given."""
    if not isinstance(raw, Mapping):
        raise InvalidUnit("each unit must be a mapping", field=where or "unit")
    prefix = f"{where}." if where else ""
    for key in sorted(set(raw) - UNIT_FIELDS, key=str):
        raise InvalidUnit(f"unknown field; use {', '.join(sorted(UNIT_FIELDS))}", field=f"{prefix}{key}")
    unit_code = validate_code(code if code is not None else raw.get("code"), field_name=f"{prefix}code")
    if code is not None and raw.get("code") not in (None, code):
        raise InvalidUnit("the code in the body differs from the one in the URL", field=f"{prefix}code")
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip():
        raise InvalidUnit("a unit needs a non-empty name", field=f"{prefix}name")
    if len(name) > MAX_NAME:
        raise InvalidUnit(f"at most {MAX_NAME} characters", field=f"{prefix}name")
    active = raw.get("active", True)
    if not isinstance(active, bool):
        raise InvalidUnit("must be true or false", field=f"{prefix}active")
    return Unit(
        code=unit_code,
        name=nfc(name),
        groups=_str_list(raw.get("groups"), f"{prefix}groups", GROUP_RE),
        tags=_str_list(raw.get("tags"), f"{prefix}tags", None),
        active=active,
    )


def parse_units_document(doc: object) -> list[Unit]:
    """Parses `{units: [...]}` (or a bare list); refuses duplicate codes."""
    if isinstance(doc, Mapping):
        for key in sorted(set(doc) - {"units"}, key=str):
            raise InvalidUnit("unknown field; a units document holds only 'units'", field=str(key))
    items = doc.get("units") if isinstance(doc, Mapping) else doc
    if not isinstance(items, list):
        raise InvalidUnit("expected a mapping with a 'units' list", field="units")
    units: list[Unit] = []
    seen: set[str] = set()
    for i, raw in enumerate(items):
        unit = parse_unit(raw, where=f"units[{i}]")
        if unit.code in seen:
            raise InvalidUnit(f"unit {unit.code} appears twice", field=f"units[{i}].code")
        seen.add(unit.code)
        units.append(unit)
    return units
