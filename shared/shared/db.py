"""SQLAlchemy engines (PostgreSQL or SQLite), transaction helpers and programmatic Alembic migrations."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    try:
        # WAL lets the web threads read while a worker writes; the busy timeout makes writers queue
        # instead of failing with "database is locked".
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()


def make_engine(url: str | sa.URL, **kwargs: Any) -> Engine:
    """An engine for docroute: SQLite with WAL, foreign keys and busy timeout; PostgreSQL with pre-ping."""
    parsed = sa.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        in_memory = not database or database == ":memory:"
        options: dict[str, Any] = {"connect_args": {"check_same_thread": False, "timeout": 30}}
        if in_memory:
            # One shared connection, or every thread would see its own empty in-memory database.
            options["poolclass"] = StaticPool
        else:
            Path(str(database)).parent.mkdir(parents=True, exist_ok=True)
        options.update(kwargs)
        engine = sa.create_engine(parsed, **options)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    options = {"pool_pre_ping": True}
    options.update(kwargs)
    return sa.create_engine(parsed, **options)


def transaction(engine: Engine) -> AbstractContextManager[Connection]:
    """A connection inside a transaction: committed when the block ends, rolled back on an exception."""
    return engine.begin()


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session committed when the block ends, rolled back on an exception, always closed."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def run_migrations(engine: Engine, script_location: str | Path) -> None:
    """Run `alembic upgrade head` on `engine`.

    The service's env.py must use `config.attributes["connection"]` when it is set (it is here), so the
    migration runs on this engine — also for in-memory SQLite, which a URL could not reach.
    """
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(script_location))
    # '%' would be read as interpolation by configparser.
    config.set_main_option(
        "sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%")
    )
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
