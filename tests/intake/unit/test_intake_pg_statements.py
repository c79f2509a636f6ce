"""intake's PostgreSQL statements on the hot paths stay within what psycopg caches its parse of.

psycopg converts a statement's `%(name)s` placeholders afresh on every execution once it has more than
50 parameters or 4 KB of text; the registration statement once did both, at 0.3–0.5 ms per registration.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from intake.adapters.counter import registration_postgresql
from intake.status import _CLAIM_AND_LOCK, _TASKS_AND_CODES, _WRITE_TASKS, _WRITE_TASKS_AND_STATUSES
from psycopg import _queries
from sqlalchemy.dialects import postgresql


@pytest.mark.parametrize(
    "statement",
    [
        registration_postgresql(statuses=False),
        registration_postgresql(statuses=True),
        _CLAIM_AND_LOCK,
        _TASKS_AND_CODES,
        _WRITE_TASKS,
        _WRITE_TASKS_AND_STATUSES,
    ],
)
def test_the_statement_is_within_psycopgs_parse_cache(statement: sa.TextClause) -> None:
    compiled = statement.compile(dialect=postgresql.psycopg.dialect())
    text = str(compiled).encode("utf-8")
    assert len(text) <= _queries.MAX_CACHED_STATEMENT_LENGTH
    assert len(compiled.params) <= _queries.MAX_CACHED_STATEMENT_PARAMS
