"""Initial routing schema: units, rule versions, directives, tasks, task history, outbox, inbox."""

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

import sqlalchemy as sa
from alembic import op

from shared.inbox import inbox_table
from shared.outbox import outbox_table

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "units",
        sa.Column("code", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(300), nullable=False),
        sa.Column("groups", sa.JSON, nullable=False),
        sa.Column("tags", sa.JSON, nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("queue_declared_at", TS, nullable=True),
    )
    op.create_table(
        "rule_versions",
        sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("document", sa.JSON, nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
    )
    op.create_table(
        "directives",
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
    )
    op.create_table(
        "tasks",
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
        sa.Column("lease_count", sa.Integer, nullable=False),
        sa.Column("overdue_at", TS, nullable=True),
        sa.Column("reply_number", sa.String(64), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.UniqueConstraint("directive_id", "unit", name="uq_tasks_directive_unit"),
    )
    op.create_index("ix_tasks_unit_status", "tasks", ["unit", "status"])
    op.create_index("ix_tasks_status_due", "tasks", ["status", "due_at"])
    op.create_table(
        "task_history",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("task_id", sa.String(36), sa.ForeignKey("tasks.id"), nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("from_status", sa.String(16), nullable=True),
        sa.Column("to_status", sa.String(16), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("note", sa.Text, nullable=True),
        sa.Column("reply_number", sa.String(64), nullable=True),
        sa.Column("report", sa.JSON, nullable=True),
    )
    op.create_index("ix_task_history_task_id", "task_history", ["task_id"])
    # The outbox and inbox are shared plumbing: their shape is defined once, in shared.
    meta = sa.MetaData()
    outbox_table(meta).create(op.get_bind())
    inbox_table(meta).create(op.get_bind())


def downgrade() -> None:
    for name in ("inbox", "outbox", "task_history", "tasks", "directives", "rule_versions", "units"):
        op.drop_table(name)
