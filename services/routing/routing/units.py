"""Recipient units: import, upsert, read, list, deactivate, and the declaration of their task queues."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from routing.adapters import tables as t
from routing.adapters.repository import unit_from_row, unit_json
from routing.adapters.unit_queue import UnitQueues
from routing.domain.errors import UnitDeactivated, UnitNotFound
from routing.domain.units import Unit
from routing.ledger import utcnow

log = logging.getLogger(__name__)


@dataclass
class ImportResult:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)


def _upsert_unit(conn: Connection, unit: Unit, now: datetime) -> str:
    row = conn.execute(sa.select(t.units).where(t.units.c.code == unit.code)).first()
    values = {
        "name": unit.name,
        "groups": list(unit.groups),
        "tags": list(unit.tags),
        "active": unit.active,
        "updated_at": now,
    }
    if row is None:
        conn.execute(sa.insert(t.units).values(code=unit.code, created_at=now, **values))
        return "created"
    if unit_from_row(row).same_definition(unit):
        return "unchanged"
    conn.execute(sa.update(t.units).where(t.units.c.code == unit.code).values(**values))
    return "updated"


def ensure_unit_queues(*, engine: Engine, queues: UnitQueues, codes: Iterable[str] | None = None) -> int:
    """Declares the task queue of every unit not yet declared (or of `codes`); returns how many."""
    with engine.connect() as conn:
        query = sa.select(t.units.c.code)
        if codes is None:
            query = query.where(t.units.c.queue_declared_at.is_(None))
        else:
            query = query.where(t.units.c.code.in_(list(codes)))
        pending = list(conn.execute(query).scalars())
    if not pending:
        return 0
    queues.declare(pending)
    with engine.begin() as conn:
        conn.execute(sa.update(t.units).where(t.units.c.code.in_(pending)).values(queue_declared_at=utcnow()))
    return len(pending)


def _declare_best_effort(engine: Engine, queues: UnitQueues | None, codes: list[str]) -> None:
    if queues is None or not codes:
        return
    try:
        ensure_unit_queues(engine=engine, queues=queues, codes=codes)
    except Exception:
        log.warning("could not declare unit queues now; the worker will", exc_info=True)


def import_units(units: list[Unit], *, engine: Engine, queues: UnitQueues | None) -> ImportResult:
    """Upserts units idempotently and declares the queues of new units."""
    result = ImportResult()
    now = utcnow()
    with engine.begin() as conn:
        for unit in units:
            getattr(result, _upsert_unit(conn, unit, now)).append(unit.code)
    _declare_best_effort(engine, queues, result.created + result.updated)
    return result


def put_unit(unit: Unit, *, engine: Engine, queues: UnitQueues | None) -> tuple[dict[str, Any], bool]:
    with engine.begin() as conn:
        outcome = _upsert_unit(conn, unit, utcnow())
    _declare_best_effort(engine, queues, [unit.code])
    return get_unit(unit.code, engine=engine), outcome == "created"


def get_unit(code: str, *, engine: Engine) -> dict[str, Any]:
    with engine.connect() as conn:
        row = conn.execute(sa.select(t.units).where(t.units.c.code == code)).first()
    if row is None:
        raise UnitNotFound(f"no unit {code}")
    return unit_json(row)


def list_units(
    *, engine: Engine, group: str | None, active: bool | None, page: int, per_page: int
) -> tuple[list[dict[str, Any]], int]:
    with engine.connect() as conn:
        rows = list(conn.execute(sa.select(t.units).order_by(t.units.c.code)))
    if group is not None:
        rows = [r for r in rows if group in (r.groups or ())]
    if active is not None:
        rows = [r for r in rows if bool(r.active) == active]
    start = (page - 1) * per_page
    return [unit_json(r) for r in rows[start : start + per_page]], len(rows)


_UNIT_ACTIVE = sa.select(t.units.c.active).where(t.units.c.code == sa.bindparam("p_unit"))


def require_active(code: str, *, engine: Engine) -> None:
    """Refuses a deactivated unit's caller; an unknown code is left to the use case (it answers 404).

    Read on every request of a unit token: a deactivation must hold from its commit on, in every process.
    """
    with engine.connect() as conn:
        active = conn.execute(_UNIT_ACTIVE, {"p_unit": code}).scalar_one_or_none()
    if active is not None and not active:
        raise UnitDeactivated(f"unit {code} is deactivated; its tokens are no longer accepted")


def deactivate_unit(code: str, *, engine: Engine) -> dict[str, Any]:
    """Deactivation keeps the unit's tasks and history; it only stops new assignments."""
    with engine.begin() as conn:
        done = conn.execute(
            sa.update(t.units).where(t.units.c.code == code).values(active=False, updated_at=utcnow())
        )
        if done.rowcount == 0:
            raise UnitNotFound(f"no unit {code}")
    return get_unit(code, engine=engine)


# ------------------------------------------------------------------------------------------------ rules


def unit_codes(*, engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(sa.select(t.units.c.code).order_by(t.units.c.code)).scalars())
