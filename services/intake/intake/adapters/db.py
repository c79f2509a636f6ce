"""The intake database: engine creation and Alembic migrations (`migrate(engine)`)."""

from __future__ import annotations

from pathlib import Path

from shared.db import make_engine, run_migrations
from sqlalchemy.engine import Engine

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"

__all__ = ["MIGRATIONS", "make_engine", "migrate"]


def migrate(engine: Engine) -> None:
    """Brings the intake schema to the newest Alembic revision."""
    run_migrations(engine, MIGRATIONS)
