"""The routing database: engine creation and Alembic migrations."""

from __future__ import annotations

from pathlib import Path

from shared.db import make_engine, run_migrations
from sqlalchemy.engine import Engine

MIGRATIONS = Path(__file__).resolve().parents[1] / "migrations"


def migrate(engine: Engine) -> None:
    """Brings the routing schema to the latest version."""
    run_migrations(engine, MIGRATIONS)


def connect(url: str) -> Engine:
    """The routing engine. A multi-row INSERT without RETURNING (history, outbox) is sent as one
    INSERT … VALUES (…), (…) statement instead of psycopg's pipelined executemany of one INSERT per row:
    the same rows, one statement for the server to run (about 1 ms less per ten rows here)."""
    engine = make_engine(url)
    if engine.dialect.use_insertmanyvalues:
        engine.dialect.use_insertmanyvalues_wo_returning = True
    return engine
