"""The inbox: one row per handled message id and consumer, so a redelivered event is processed once."""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from shared.db import dialect_name


def inbox_table(metadata: sa.MetaData) -> sa.Table:
    """The `inbox` table; (message_id, consumer) is the primary key that makes claim() race-safe."""
    return sa.Table(
        "inbox",
        metadata,
        sa.Column("message_id", sa.String(200), primary_key=True),
        sa.Column("consumer", sa.String(200), primary_key=True),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=False),
    )


def _inserted(result: sa.Result[Any]) -> bool:
    # RETURNING yields the row only when ON CONFLICT DO NOTHING did not skip it (rowcount is not reliable
    # across drivers for INSERT).
    return result.first() is not None


@functools.cache
def _claim_statement(table: sa.Table, dialect: str) -> sa.Insert:
    """INSERT … ON CONFLICT DO NOTHING RETURNING, built once per table and dialect (building it and its
    cache key took ~0.2 ms per message)."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return (
        insert(table)
        .values(
            message_id=sa.bindparam("message_id"),
            consumer=sa.bindparam("consumer"),
            processed_at=sa.bindparam("processed_at"),
        )
        .on_conflict_do_nothing()
        .returning(table.c.message_id)
    )


def claim(conn: Connection | Session, table: sa.Table, message_id: str, consumer: str) -> bool:
    """Record that `consumer` handles `message_id`: True the first time, False for a duplicate.

    Call it first in the handler's transaction: if the transaction rolls back, the claim goes with it and
    a redelivery is processed again. A concurrent claim of the same id blocks on the primary key until the
    first transaction ends, then sees the row.
    """
    values = {"message_id": message_id, "consumer": consumer, "processed_at": datetime.now(UTC)}
    dialect = dialect_name(conn)
    if dialect in ("postgresql", "sqlite"):
        return _inserted(conn.execute(_claim_statement(table, dialect), values))
    # Other databases: a savepoint keeps the caller's transaction usable after the duplicate-key error.
    try:
        with conn.begin_nested():
            conn.execute(sa.insert(table).values(**values))
    except IntegrityError:
        return False
    return True
