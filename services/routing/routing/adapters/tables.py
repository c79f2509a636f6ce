"""SQLAlchemy Core tables of the routing database, including the shared outbox and inbox tables."""

from __future__ import annotations

import sqlalchemy as sa
from shared.inbox import inbox_table
from shared.outbox import outbox_table

metadata = sa.MetaData()

TS = sa.DateTime(timezone=True)

units = sa.Table(
    "units",
    metadata,
    sa.Column("code", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(300), nullable=False),
    sa.Column("groups", sa.JSON, nullable=False),
    sa.Column("tags", sa.JSON, nullable=False),
    sa.Column("active", sa.Boolean, nullable=False),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("updated_at", TS, nullable=False),
    # Null until the unit's task queue was declared on the broker.
    sa.Column("queue_declared_at", TS, nullable=True),
)

# One row (id 1) whose revision triggers bump on every write to units or rule_versions (migration 0004):
# a worker keeps both in memory and reads them again only when this number has moved.
reference_revision = sa.Table(
    "reference_revision",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("revision", sa.BigInteger, nullable=False),
)

rule_versions = sa.Table(
    "rule_versions",
    metadata,
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("document", sa.JSON, nullable=False),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("created_by", sa.String(200), nullable=False),
)

directives = sa.Table(
    "directives",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("arrival_number", sa.Integer, nullable=True),
    sa.Column("arrival_date", sa.Date, nullable=False),
    sa.Column("received_at", TS, nullable=True),
    sa.Column("number", sa.String(64), nullable=False),
    sa.Column("subject", sa.Text, nullable=False),
    sa.Column("issuer", sa.JSON, nullable=False),
    sa.Column("urgency", sa.String(32), nullable=False),
    sa.Column("due_date", sa.Date, nullable=True),
    sa.Column("metadata", sa.JSON, nullable=False),
    sa.Column("attachments", sa.JSON, nullable=False),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("matched_rules", sa.JSON, nullable=False),
    sa.Column("rule_version", sa.Integer, nullable=True),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("updated_at", TS, nullable=False),
    # The directive's revision as routing last applied it (1 until intake.directive_updated), and the
    # directive that replaced it (intake.directive_replaced).
    sa.Column("revision", sa.Integer, nullable=False, server_default=sa.text("1")),
    sa.Column("replaced_by", sa.String(64), nullable=True),
)
sa.Index("ix_directives_replaced_by", directives.c.replaced_by)

tasks = sa.Table(
    "tasks",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("directive_id", sa.String(64), sa.ForeignKey("directives.id"), nullable=False),
    sa.Column("unit", sa.String(64), sa.ForeignKey("units.code"), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("instructions", sa.Text, nullable=True),
    sa.Column("due_date", sa.Date, nullable=True),
    sa.Column("due_at", TS, nullable=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("rule_id", sa.String(64), nullable=True),
    sa.Column("rule_version", sa.Integer, nullable=True),
    sa.Column("lease_expires_at", TS, nullable=True),
    sa.Column("lease_count", sa.Integer, nullable=False, default=0),
    sa.Column("overdue_at", TS, nullable=True),
    sa.Column("reply_number", sa.String(64), nullable=True),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("updated_at", TS, nullable=False),
    # One task per unit per directive, whatever the rules or clerks do.
    sa.UniqueConstraint("directive_id", "unit", name="uq_tasks_directive_unit"),
)
sa.Index("ix_tasks_unit_status", tasks.c.unit, tasks.c.status)
# The unit ledger's order: a page is read in order from here instead of fetching and sorting the unit's tasks.
sa.Index("ix_tasks_unit_created", tasks.c.unit, tasks.c.created_at, tasks.c.id)
sa.Index("ix_tasks_status_due", tasks.c.status, tasks.c.due_at)

task_history = sa.Table(
    "task_history",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("task_id", sa.String(36), sa.ForeignKey("tasks.id"), nullable=False, index=True),
    sa.Column("at", TS, nullable=False),
    sa.Column("from_status", sa.String(16), nullable=True),
    sa.Column("to_status", sa.String(16), nullable=False),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("note", sa.Text, nullable=True),
    sa.Column("reply_number", sa.String(64), nullable=True),
    sa.Column("report", sa.JSON, nullable=True),
)

outbox = outbox_table(metadata)
inbox = inbox_table(metadata)
