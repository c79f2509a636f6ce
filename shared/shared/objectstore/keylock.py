"""Key locks: a serialisation point of our own for stores whose server ignores conditional PUTs on versioned
buckets, so that checking "no version yet" and writing the first one happen as one step among our writers."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Protocol, runtime_checkable

import sqlalchemy as sa
from sqlalchemy.engine import Engine


@runtime_checkable
class KeyLock(Protocol):
    """Holds a lock on one object key for the duration of the `with` block, across every writer."""

    def hold(self, bucket: str, key: str) -> AbstractContextManager[None]: ...


def _lock_id(bucket: str, key: str) -> int:
    # A 64-bit id for the key; two keys sharing one only ever wait for each other, never write together.
    return int.from_bytes(hashlib.sha256(f"{bucket}/{key}".encode()).digest()[:8], "big", signed=True)


class AdvisoryKeyLock:
    """PostgreSQL transaction-scoped advisory locks: every process using the same database serialises on the
    key, and a writer that dies (or loses its connection) releases the lock with its session."""

    def __init__(self, engine: Engine, *, timeout_seconds: float = 60.0) -> None:
        if engine.dialect.name != "postgresql":
            raise ValueError("AdvisoryKeyLock needs PostgreSQL")
        self._engine = engine
        self._timeout_ms = int(timeout_seconds * 1000)

    @contextlib.contextmanager
    def hold(self, bucket: str, key: str) -> Iterator[None]:
        with self._engine.begin() as conn:
            # Bounded: a writer stuck behind a dead-slow one gives up (and is retried) instead of hanging.
            # One statement, one round trip: set_config(..., true) is SET LOCAL, evaluated before the lock
            # in the same SELECT (a target list is evaluated left to right).
            conn.execute(
                sa.text("SELECT set_config('lock_timeout', :timeout, true), pg_advisory_xact_lock(:id)"),
                {"timeout": f"{self._timeout_ms}ms", "id": _lock_id(bucket, key)},
            )
            yield
