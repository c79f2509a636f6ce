"""reference_revision: a number that every write to units or rule_versions moves

Routing a directive needs every unit and the active rule set. Reading both for each directive cost two
queries and a parse of the rules (about a tenth of a routing worker's time with 27 units) and grows with
the number of units. Workers now keep them in memory and read this one row per directive instead; triggers
bump it in the writing transaction, whoever writes (the API, an import, SQL by hand), so a cached copy is
never used after a change has committed.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TABLES = ("units", "rule_versions")
BUMP = "UPDATE reference_revision SET revision = revision + 1 WHERE id = 1"


def upgrade() -> None:
    op.create_table(
        "reference_revision",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("revision", sa.BigInteger, nullable=False),
    )
    op.execute("INSERT INTO reference_revision (id, revision) VALUES (1, 0)")
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION routing_bump_reference_revision() RETURNS trigger LANGUAGE plpgsql AS "
            f"$$ BEGIN {BUMP}; RETURN NULL; END $$"
        )
        for table in TABLES:
            op.execute(
                f"CREATE TRIGGER {table}_bump_reference_revision "
                f"AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION routing_bump_reference_revision()"
            )
        return
    # SQLite has row triggers only: one per table and kind of write.
    for table in TABLES:
        for write in ("INSERT", "UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER {table}_{write.lower()}_bump_reference_revision "
                f"AFTER {write} ON {table} BEGIN {BUMP}; END"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in TABLES:
            op.execute(f"DROP TRIGGER {table}_bump_reference_revision ON {table}")
        op.execute("DROP FUNCTION routing_bump_reference_revision()")
    else:
        for table in TABLES:
            for write in ("insert", "update", "delete"):
                op.execute(f"DROP TRIGGER {table}_{write}_bump_reference_revision")
    op.drop_table("reference_revision")
