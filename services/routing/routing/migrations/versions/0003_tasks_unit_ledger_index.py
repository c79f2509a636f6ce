"""tasks: an index in the unit ledger's order, (unit, created_at, id)

A unit's ledger page is its tasks in creation order, 50 at a time. With only (unit, status) PostgreSQL read
every task of the unit from the heap and sorted them for each page (at 1,000,000 tasks, 100 per unit: a
bitmap heap scan and a sort per page); this index hands the page over in order and stops at its end.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_tasks_unit_created", "tasks", ["unit", "created_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_tasks_unit_created", table_name="tasks")
