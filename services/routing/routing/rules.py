"""Routing rules: validating and storing rule set versions, reading them back, and dry-run evaluation."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from routing.adapters import tables as t
from routing.adapters.repository import all_units, aware
from routing.domain.calendar import WorkingCalendar, end_of_day
from routing.domain.errors import RuleVersionNotFound
from routing.domain.rules import DirectiveFacts, PlannedTask, RuleSet, derive_tasks, parse_ruleset
from routing.domain.units import Unit
from routing.ledger import utcnow


@dataclass(frozen=True)
class ActiveRules:
    version: int
    ruleset: RuleSet
    document: dict[str, Any]
    created_at: datetime | None
    created_by: str


def _known(units: list[Unit]) -> tuple[set[str], set[str]]:
    active = [u for u in units if u.active]
    return {u.code for u in active}, {g for u in active for g in u.groups}


def validate_rules(doc: object, *, engine: Engine) -> RuleSet:
    with engine.connect() as conn:
        codes, groups = _known(all_units(conn))
    return parse_ruleset(doc, units=codes, groups=groups)


def put_rules(doc: object, *, source: str, engine: Engine, actor: str) -> dict[str, Any]:
    """Validates the whole set against the known units and stores it as a new version."""
    validate_rules(doc, engine=engine)
    digest = hashlib.sha256(
        json.dumps(doc, sort_keys=True, ensure_ascii=False, default=str).encode()
    ).hexdigest()
    for _ in range(3):
        try:
            with engine.begin() as conn:
                latest = conn.execute(
                    sa.select(t.rule_versions).order_by(t.rule_versions.c.version.desc()).limit(1)
                ).first()
                if latest is not None and latest.sha256 == digest:
                    return _version_json(latest, created=False)
                version = 1 if latest is None else latest.version + 1
                conn.execute(
                    sa.insert(t.rule_versions).values(
                        version=version,
                        document=json.loads(json.dumps(doc, default=str)),
                        source=source,
                        sha256=digest,
                        created_at=utcnow(),
                        created_by=actor,
                    )
                )
                row = conn.execute(
                    sa.select(t.rule_versions).where(t.rule_versions.c.version == version)
                ).one()
                return _version_json(row, created=True)
        except IntegrityError:
            continue  # another writer took this version number; read again
    raise RuntimeError("could not store the rule set after concurrent updates")


def _version_json(row: Any, *, created: bool) -> dict[str, Any]:
    doc = row.document or {}
    return {
        "version": row.version,
        "sha256": row.sha256,
        "created_at": aware(row.created_at).isoformat() if row.created_at else None,  # type: ignore[union-attr]
        "created_by": row.created_by,
        "rules": [r.get("id") for r in doc.get("rules", []) if isinstance(r, Mapping)],
        "created": created,
    }


def active_rules(conn: Connection) -> ActiveRules | None:
    row = conn.execute(sa.select(t.rule_versions).order_by(t.rule_versions.c.version.desc()).limit(1)).first()
    if row is None:
        return None
    # Stored sets were valid when stored; units may have gone since, so references are not checked again.
    return ActiveRules(
        row.version, parse_ruleset(row.document), row.document, aware(row.created_at), row.created_by
    )


def get_rules(*, engine: Engine) -> dict[str, Any]:
    with engine.connect() as conn:
        current = active_rules(conn)
    if current is None:
        return {"version": None, "document": {"version": 1, "rules": []}}
    return {"version": current.version, "document": current.document, "created_by": current.created_by}


def list_rule_versions(*, engine: Engine, page: int, per_page: int) -> tuple[list[dict[str, Any]], int]:
    with engine.connect() as conn:
        total = conn.execute(sa.select(sa.func.count()).select_from(t.rule_versions)).scalar_one()
        rows = conn.execute(
            sa.select(t.rule_versions)
            .order_by(t.rule_versions.c.version.desc())
            .offset((page - 1) * per_page)
            .limit(per_page)
        ).all()
    return [_version_json(r, created=False) | {"created": None} for r in rows], int(total)


def get_rule_version(version: int, *, engine: Engine) -> dict[str, Any]:
    with engine.connect() as conn:
        row = conn.execute(sa.select(t.rule_versions).where(t.rule_versions.c.version == version)).first()
    if row is None:
        raise RuleVersionNotFound(f"no rule set version {version}")
    return _version_json(row, created=False) | {
        "created": None,
        "document": row.document,
        "source": row.source,
    }


def facts_from_metadata(metadata: Mapping[str, Any], arrival_date: date) -> DirectiveFacts:
    issuer = metadata.get("issuer") or {}
    if isinstance(issuer, str):
        issuer = {"name": issuer}
    due = metadata.get("due_date")
    number = metadata.get("number") or ""
    if not number and metadata.get("code_number"):
        number = f"{metadata.get('code_number')}/{metadata.get('code_notation') or ''}"
    return DirectiveFacts(
        arrival_date=arrival_date,
        issuer_name=str(issuer.get("name") or ""),
        issuer_code=str(issuer.get("code") or ""),
        document_type=str(metadata.get("document_type") or ""),
        number=str(number),
        notation=str(metadata.get("code_notation") or ""),
        subject=str(metadata.get("subject") or ""),
        urgency=str(metadata.get("urgency") or "thuong"),
        due_date=due if isinstance(due, date) else (date.fromisoformat(due) if due else None),
    )


def evaluate(
    metadata: Mapping[str, Any], arrival_date: date, *, engine: Engine, calendar: WorkingCalendar
) -> dict[str, Any]:
    """The tasks the active rules would create for a directive, without creating them."""
    with engine.connect() as conn:
        current = active_rules(conn)
        units = all_units(conn)
    facts = facts_from_metadata(metadata, arrival_date)
    ruleset = current.ruleset if current else RuleSet()
    derivation = derive_tasks(ruleset, facts, units, calendar)
    return {
        "rule_version": current.version if current else None,
        "matched_rules": list(derivation.matched_rules),
        "tasks": [_planned_json(p) for p in derivation.tasks],
    }


def _planned_json(p: PlannedTask) -> dict[str, Any]:
    return {
        "unit": p.unit,
        "role": p.role.value,
        "title": p.title,
        "instructions": p.instructions,
        "due_date": p.due_date.isoformat() if p.due_date else None,
        "due_at": end_of_day(p.due_date).isoformat() if p.due_date else None,
        "rule_id": p.rule_id,
    }


# ------------------------------------------------------------------------------------------- directives
