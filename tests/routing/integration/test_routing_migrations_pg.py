"""Routing's Alembic chain on PostgreSQL builds exactly the tables the code declares, indexes included."""

import pytest
from migration_check import migration_diff
from routing.adapters.tables import metadata
from routing_testkit import build_routing_app

pytestmark = pytest.mark.integration


def test_migrations_match_the_table_definitions(tmp_path, pg_database_factory):
    app = build_routing_app(tmp_path, pg_database_factory())
    try:
        with app.deps.engine.connect() as conn:
            diff = migration_diff(conn, metadata)
            indexes = {
                row[0]
                for row in conn.exec_driver_sql("SELECT indexname FROM pg_indexes WHERE tablename = 'tasks'")
            }
    finally:
        app.deps.engine.dispose()
    assert diff == []
    assert "ix_tasks_unit_created" in indexes
