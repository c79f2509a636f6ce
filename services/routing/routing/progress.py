"""Progress of directives: one directive's tasks and counts, and the list of routed directives."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from routing.adapters import tables as t
from routing.adapters.repository import task_json, task_query
from routing.domain.errors import DirectiveNotFound
from routing.domain.tasks import ROLE_RANK, Role, Status
from routing.ledger import utcnow


def directive_progress(directive_id: str, *, engine: Engine, now: datetime | None = None) -> dict[str, Any]:
    now = now or utcnow()
    with engine.connect() as conn:
        directive = conn.execute(sa.select(t.directives).where(t.directives.c.id == directive_id)).first()
        if directive is None:
            raise DirectiveNotFound(f"no directive {directive_id}")
        rows = conn.execute(task_query().where(t.tasks.c.directive_id == directive_id)).all()
        replaces = sorted(
            conn.execute(
                sa.select(t.directives.c.id).where(t.directives.c.replaced_by == directive_id)
            ).scalars()
        )
    tasks = sorted(
        (task_json(r, now=now) for r in rows), key=lambda x: (ROLE_RANK[Role(x["role"])], x["unit"])
    )
    counts: dict[str, int] = {}
    for task in tasks:
        counts[task["status"]] = counts.get(task["status"], 0) + 1
    lead = [x for x in tasks if x["role"] == Role.CHU_TRI.value and x["status"] != Status.CANCELLED.value]
    return {
        "directive_id": directive_id,
        "number": directive.number,
        "subject": directive.subject,
        "arrival_number": directive.arrival_number,
        "status": directive.status,
        "matched_rules": directive.matched_rules,
        "rule_version": directive.rule_version,
        "tasks": [
            {
                "task_id": x["id"],
                "unit": x["unit"],
                "role": x["role"],
                "status": x["status"],
                "due_date": x["due_date"],
                "due_at": x["due_at"],
                "overdue": x["overdue"],
            }
            for x in tasks
        ],
        "counts": counts,
        "overdue_units": sorted({x["unit"] for x in tasks if x["overdue"]}),
        "done": bool(lead) and all(x["status"] == Status.COMPLETED.value for x in lead),
        "revision": directive.revision,
        "replaced_by": directive.replaced_by,
        "replaces": replaces,
    }


def list_directives(
    *, engine: Engine, status: str | None, page: int, per_page: int
) -> tuple[list[dict[str, Any]], int]:
    with engine.connect() as conn:
        where = [t.directives.c.status == status] if status else []
        total = conn.execute(sa.select(sa.func.count()).select_from(t.directives).where(*where)).scalar_one()
        rows = conn.execute(
            sa.select(t.directives)
            .where(*where)
            .order_by(t.directives.c.created_at)
            .offset((page - 1) * per_page)
            .limit(per_page)
        ).all()
    items = [
        {
            "id": r.id,
            "number": r.number,
            "subject": r.subject,
            "issuer": r.issuer,
            "urgency": r.urgency,
            "arrival_number": r.arrival_number,
            "arrival_date": r.arrival_date.isoformat(),
            "due_date": r.due_date.isoformat() if r.due_date else None,
            "status": r.status,
        }
        for r in rows
    ]
    return items, int(total)


# ------------------------------------------------------------------------------------------- polling
