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
    return make_engine(url)
