"""A unit's tasks as it reads them: one task with its history, the unit's ledger, the directive's files."""

from __future__ import annotations

import hashlib
from typing import Any

import sqlalchemy as sa
from shared.objectstore import ObjectStore
from sqlalchemy.engine import Engine

from routing.adapters import tables as t
from routing.adapters.repository import task_json, task_query
from routing.domain.errors import AttachmentNotFound, UnitNotFound
from routing.ledger import task_history, utcnow, visible_task


class ChecksumFailed(Exception):
    """A blob read back from the object store does not have the SHA-256 recorded for it."""


def get_task(task_id: str, *, engine: Engine, unit: str | None) -> dict[str, Any]:
    with engine.connect() as conn:
        row = visible_task(conn, task_id, unit)
        history = task_history(conn, task_id)
    return task_json(row) | {"history": history}


def _ledger_statements(*, by_status: bool) -> tuple[sa.Select[Any], sa.Select[Any]]:
    """A unit's task count and one page of its ledger, in creation order (ix_tasks_unit_created).

    Built once with bind parameters: at 50 rows a page, building and cache-keying a fresh statement on every
    request cost as much as fetching the rows.
    """
    where = [t.tasks.c.unit == sa.bindparam("p_unit")]
    if by_status:
        where.append(t.tasks.c.status == sa.bindparam("p_status"))
    count = sa.select(sa.func.count()).select_from(t.tasks).where(*where)
    page = (
        task_query()
        .where(*where)
        .order_by(t.tasks.c.created_at, t.tasks.c.id)
        .offset(sa.bindparam("p_offset"))
        .limit(sa.bindparam("p_limit"))
    )
    return count, page


_LEDGER = _ledger_statements(by_status=False)
_LEDGER_BY_STATUS = _ledger_statements(by_status=True)
_UNIT_EXISTS = sa.select(t.units.c.code).where(t.units.c.code == sa.bindparam("p_unit"))


def list_unit_tasks(
    code: str, *, engine: Engine, status: str | None, page: int, per_page: int
) -> tuple[list[dict[str, Any]], int]:
    count, select_page = _LEDGER_BY_STATUS if status else _LEDGER
    params: dict[str, Any] = {"p_unit": code, "p_offset": (page - 1) * per_page, "p_limit": per_page}
    if status:
        params["p_status"] = status
    with engine.connect() as conn:
        if conn.execute(_UNIT_EXISTS, params).first() is None:
            raise UnitNotFound(f"no unit {code}")
        total = conn.execute(count, params).scalar_one()
        rows = conn.execute(select_page, params).all()
    now = utcnow()
    return [task_json(r, now=now) for r in rows], int(total)


def read_attachment(
    task_id: str, attachment_id: str, *, engine: Engine, store: ObjectStore, unit: str | None
) -> tuple[dict[str, Any], bytes]:
    with engine.connect() as conn:
        row = visible_task(conn, task_id, unit)
    for att in row.d_attachments or []:
        if str(att.get("id")) == attachment_id:
            data = store.read(att["bucket"], att["key"])
            if att.get("sha256") and hashlib.sha256(data).hexdigest() != att["sha256"]:
                raise ChecksumFailed(f"attachment {attachment_id} does not match its SHA-256")
            return att, data
    raise AttachmentNotFound(f"no attachment {attachment_id} on task {task_id}")
