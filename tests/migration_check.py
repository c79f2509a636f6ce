"""Shared by the services' PostgreSQL tests: what separates a migrated database from the table definitions."""

from typing import Any

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext


def migration_diff(conn: sa.Connection, metadata: sa.MetaData) -> list[Any]:
    """Alembic's autogenerate comparison (types included), ignoring Alembic's own version table."""
    context = MigrationContext.configure(
        conn,
        opts={
            "compare_type": True,
            "include_name": lambda name, kind, _parent: not (kind == "table" and name.startswith("alembic_")),
        },
    )
    return list(compare_metadata(context, metadata))
