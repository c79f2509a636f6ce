"""SQLAlchemy engines (PostgreSQL or SQLite), transaction helpers and programmatic Alembic migrations."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import date, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

from shared import json_bytes


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
    """An engine for docroute: SQLite with WAL, foreign keys and busy timeout; PostgreSQL pings a pooled
    connection before use when it has been idle (`ping_after_idle` seconds, default 1)."""
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
    ping_after_idle = float(kwargs.pop("ping_after_idle", PING_AFTER_IDLE_SECONDS))
    engine = sa.create_engine(parsed, **kwargs)
    _ping_connections_back_from_idle(engine, ping_after_idle)
    return engine


# A pooled connection that went back to the pool less than this long ago was working then; one that sat
# longer is pinged before use (the server may have restarted or dropped it meanwhile).
PING_AFTER_IDLE_SECONDS = 1.0


def _ping_connections_back_from_idle(engine: Engine, idle_seconds: float) -> None:
    """Pessimistic disconnect handling, paid only where it buys something.

    SQLAlchemy's `pool_pre_ping` costs a round trip on every checkout — a busy service checks a connection
    out for every request, moments after the last one used it. Here a checkout pings only a connection
    that sat in the pool for `idle_seconds` or more; a dead one raises DisconnectionError, which makes the
    pool throw it away and connect afresh (up to three times). A server restart within the last second
    is noticed by the statement itself: SQLAlchemy then invalidates the whole pool, and that one request
    fails (503, to be retried).
    """

    def fresh(_dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    def back(_dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    def out(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("idle_since")
        if since is not None and time.monotonic() - since < idle_seconds:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:
            raise sa.exc.DisconnectionError(f"connection lost while idle: {exc}") from exc

    event.listen(engine, "connect", fresh)
    event.listen(engine, "checkin", back)
    event.listen(engine, "checkout", out)


def json_rows_insert(table: sa.Table, param: str, columns: Sequence[str]) -> sa.Insert:
    """PostgreSQL: INSERT INTO `table` (`columns`) the rows of one JSON array parameter, in array order.

    Any number of rows costs one statement with one parameter: psycopg's executemany sends and binds every
    row on its own, which for a few dozen rows costs more client CPU than the server spends on them. The
    server reads each element once into the table's row type (json_populate_recordset: a JSON column
    keeps the field's text exactly, a missing field is NULL), and a serial key left out of `columns` is
    drawn in array order. Encode the parameter with `json_rows`.
    """
    qualified = ".".join('"' + part.replace('"', '""') + '"' for part in (table.schema, table.name) if part)
    row_type: sa.ColumnElement[Any] = sa.literal_column(f"NULL::{qualified}")
    rows = (
        sa.func.json_populate_recordset(
            row_type, sa.cast(sa.bindparam(param, type_=sa.Text), postgresql.JSON)
        )
        .table_valued(*[sa.column(c.name, c.type) for c in table.columns], with_ordinality="row_order")
        .render_derived(name=f"{param}_row")
    )
    return sa.insert(table).from_select(
        list(columns), sa.select(*[rows.c[name] for name in columns]).order_by(rows.c.row_order)
    )


def _json_value(value: object) -> object:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return "\\x" + bytes(value).hex()  # bytea's hex input format
    raise TypeError(f"cannot write {type(value).__name__} into a JSON row")


def json_rows(rows: Sequence[Mapping[str, Any]]) -> str:
    """The parameter of a json_rows_insert statement: `rows` as a JSON array (dates in ISO 8601)."""
    return json_bytes.dumps(list(rows), default=_json_value).decode("utf-8")


def dialect_name(conn: Connection | Session) -> str:
    """ "postgresql", "sqlite", …: the database behind a connection or an ORM session."""
    return conn.get_bind().dialect.name if isinstance(conn, Session) else conn.dialect.name


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
