"""Directive lifecycle: revisions (updates) and replacement links.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05
"""

from alembic import op
import sqlalchemy as sa


revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "directives", sa.Column("revision", sa.Integer(), nullable=False, server_default=sa.text("1"))
    )
    op.add_column("directives", sa.Column("replaces", sa.String(length=36), nullable=True))
    op.add_column("directives", sa.Column("replaced_by", sa.String(length=36), nullable=True))
    op.create_table(
        "directive_revisions",
        sa.Column("directive_id", sa.String(length=36), nullable=False),
        sa.Column("revision", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("changes", sa.JSON(), nullable=False),
        sa.Column("packet_id", sa.String(length=36), nullable=True),
        sa.ForeignKeyConstraint(
            ["directive_id"],
            ["directives.id"],
            name=op.f("fk_directive_revisions_directive_id_directives"),
        ),
        sa.PrimaryKeyConstraint("directive_id", "revision", name=op.f("pk_directive_revisions")),
    )


def downgrade() -> None:
    op.drop_table("directive_revisions")
    # Plain ALTER TABLE … DROP COLUMN (SQLite has it since 3.35): a batch copy of `directives` would drop the
    # table other rows point at, which SQLite refuses with foreign keys on once there is data.
    for column in ("replaced_by", "replaces", "revision"):
        op.drop_column("directives", column)
