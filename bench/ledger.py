"""Synthetic routing data written straight into a migrated routing database with set-based SQL
(generate_series), for the polling and scale rows."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Engine


def unit_code(prefix: str, index: int) -> str:
    return f"{prefix}.{index:05d}"


def insert_units(engine: Engine, *, prefix: str, count: int) -> list[str]:
    """`count` active units PREFIX.00000…, group "bench"; queues are declared later (by the API's poll
    or the routing worker), as for units imported over the API."""
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                """
                INSERT INTO units
                    (code, name, groups, tags, active, created_at, updated_at, queue_declared_at)
                SELECT :prefix || '.' || lpad(i::text, 5, '0'),
                       'Đơn vị thử ' || i, '["bench"]', '[]', true, now(), now(), NULL
                FROM generate_series(0, :count - 1) AS i
                """
            ),
            {"prefix": prefix, "count": count},
        )
    return [unit_code(prefix, i) for i in range(count)]


@dataclass(frozen=True)
class TaskBatch:
    directive_prefix: str
    directives: int
    per_directive: int
    units: int

    @property
    def tasks(self) -> int:
        return self.directives * self.per_directive

    def directive_id(self, index: int) -> str:
        return f"{self.directive_prefix}-{index:07d}"

    def unit_index(self, directive: int, slot: int) -> int:
        # Consecutive slots of one directive hit distinct units (per_directive <= units), which keeps the
        # one-task-per-unit-per-directive constraint, and the tasks spread evenly over the units.
        return (directive * self.per_directive + slot) % self.units


def insert_tasks(engine: Engine, batch: TaskBatch, *, unit_prefix: str) -> None:
    """`batch.directives` routed directives with `batch.per_directive` assigned tasks each."""
    if batch.per_directive > batch.units:
        raise ValueError("a directive cannot have more tasks than there are units")
    params = {
        "dp": batch.directive_prefix,
        "nd": batch.directives,
        "per": batch.per_directive,
        "nu": batch.units,
        "up": unit_prefix,
    }
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                """
                INSERT INTO directives (id, arrival_number, arrival_date, received_at, number, subject,
                    issuer,
                    urgency, due_date, metadata, attachments, status, matched_rules, rule_version,
                    created_at, updated_at)
                SELECT :dp || '-' || lpad(d::text, 7, '0'), d + 1, current_date, now(),
                       (d + 1)::text || '/KH-BCĐ', 'Kế hoạch thử nghiệm số ' || d,
                       '{"name": "Ban Chỉ đạo thử nghiệm"}', 'thuong', current_date + 30, '{}', '[]',
                       'routed', '["bench"]', NULL, now(), now()
                FROM generate_series(0, :nd - 1) AS d
                """
            ),
            params,
        )
        conn.execute(
            sa.text(
                """
                INSERT INTO tasks (id, directive_id, unit, role, title, instructions, due_date, due_at,
                    status,
                    rule_id, rule_version, lease_expires_at, lease_count, overdue_at, reply_number,
                    created_at, updated_at)
                SELECT gen_random_uuid()::text, :dp || '-' || lpad(d::text, 7, '0'),
                       :up || '.' || lpad(((d * :per + s) % :nu)::text, 5, '0'),
                       CASE WHEN s = 0 THEN 'chu_tri' ELSE 'phoi_hop' END,
                       'Triển khai kế hoạch thử nghiệm', NULL, current_date + 30,
                       now() + interval '30 days', 'assigned', 'bench', NULL, NULL, 0, NULL, NULL,
                       now() - (d || ' seconds')::interval, now()
                FROM generate_series(0, :nd - 1) AS d, generate_series(0, :per - 1) AS s
                """
            ),
            params,
        )
        conn.execute(sa.text("ANALYZE units"))
        conn.execute(sa.text("ANALYZE directives"))
        conn.execute(sa.text("ANALYZE tasks"))


def task_ids(engine: Engine, directive_prefix: str) -> list[tuple[str, str, str]]:
    """(task id, unit, directive id) of a batch's tasks."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT id, unit, directive_id FROM tasks WHERE directive_id LIKE :p ORDER BY unit, id"),
            {"p": directive_prefix + "-%"},
        ).all()
    return [(r.id, r.unit, r.directive_id) for r in rows]
