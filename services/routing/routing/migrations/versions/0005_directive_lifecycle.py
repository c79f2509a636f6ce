"""directives: the revision routing last applied (intake.directive_updated) and the directive that replaced
this one (intake.directive_replaced)

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("directives", sa.Column("revision", sa.Integer(), nullable=False, server_default=sa.text("1")))
    op.add_column("directives", sa.Column("replaced_by", sa.String(length=64), nullable=True))
    op.create_index("ix_directives_replaced_by", "directives", ["replaced_by"])


def downgrade() -> None:
    op.drop_index("ix_directives_replaced_by", table_name="directives")
    with op.batch_alter_table("directives") as batch:
        batch.drop_column("replaced_by")
        batch.drop_column("revision")
