"""Reference data (units, the active rule set) kept in memory per process, read again once it changed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from routing.adapters import tables as t

T = TypeVar("T")

_REVISION = sa.select(t.reference_revision.c.revision).where(t.reference_revision.c.id == 1)


def reference_revision(conn: Connection) -> int:
    """The number triggers move on every committed write to units or rule_versions (migration 0004)."""
    return int(conn.execute(_REVISION).scalar_one())


class ReferenceCache(Generic[T]):
    """What `load` read, kept with the reference revision it was read under.

    `get` reads the revision (one row) and loads again only when it moved. The revision is read first, so
    whatever `load` reads afterwards is at least that new: a copy labelled with a revision never predates
    it, and a change committed after the label moves the number and forces the next load. Threads share a
    cache; two may load at once after a change, and either result is correct.
    """

    def __init__(self, load: Callable[[Connection], T]) -> None:
        self._load = load
        self._kept: tuple[int, T] | None = None
        self.loads = 0

    def get(self, conn: Connection, revision: int | None = None) -> T:
        """`revision`: the reference revision the caller just read in this transaction (else read here)."""
        if revision is None:
            revision = reference_revision(conn)
        kept = self._kept
        if kept is not None and kept[0] == revision:
            return kept[1]
        value = self._load(conn)
        self.loads += 1
        self._kept = (revision, value)
        return value
