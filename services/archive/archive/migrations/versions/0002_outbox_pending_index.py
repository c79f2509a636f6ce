"""outbox: a partial index of the rows still to publish replaces the (published_at, id) index

The relay asks for unpublished rows in id order with a LIMIT. With the two-column index and stale
statistics PostgreSQL chose a bitmap scan of the whole backlog plus a sort (130 ms per batch at 80,000
pending rows); the partial index on id holds only pending rows and is read in order, stopping at the limit.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from alembic import op
from shared.outbox import migrate_to_pending_index

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    migrate_to_pending_index(op.execute)


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS ix_outbox_pending")
    op.execute("CREATE INDEX IF NOT EXISTS ix_outbox_unpublished ON outbox (published_at, id)")
