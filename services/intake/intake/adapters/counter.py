"""The arrival counter: takes the next số đến inside the caller's transaction (gapless, never repeated)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from intake.adapters.status_store import REGISTRATION_STATUSES_POSTGRESQL
from intake.adapters.tables import arrival_counters
from intake.domain.arrival import ArrivalSeries, next_arrival_number


def take_arrival_number(conn: Connection, series: ArrivalSeries) -> int:
    """Increments the series' counter row and returns the new value.

    The UPSERT … RETURNING locks the row until the caller's transaction ends, so concurrent submissions
    queue behind each other; a rolled-back transaction rolls its increment back too, leaving no gap.
    """
    table = arrival_counters
    dialect = conn.dialect.name
    if dialect in ("postgresql", "sqlite"):
        insert = postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table)
        statement = (
            insert.values(organisation=series.organisation, year=series.year, last_number=1)
            .on_conflict_do_update(
                index_elements=[table.c.organisation, table.c.year],
                set_={"last_number": table.c.last_number + 1},
            )
            .returning(table.c.last_number)
        )
        return int(conn.execute(statement).scalar_one())
    # Other databases: lock the row explicitly, then write.
    where = (table.c.organisation == series.organisation) & (table.c.year == series.year)
    last = conn.execute(sa.select(table.c.last_number).where(where).with_for_update()).scalar_one_or_none()
    number = next_arrival_number(last)
    if last is None:
        conn.execute(
            sa.insert(table).values(organisation=series.organisation, year=series.year, last_number=number)
        )
    else:
        conn.execute(sa.update(table).where(where).values(last_number=number))
    return number


# The registration's rows travel as JSON parameters read into the table's row type (json_populate_record: a
# JSON column keeps its text, a missing field is NULL), so the statement has a dozen parameters and well
# under 4 KB of text: psycopg caches its parse of a statement only up to 50 parameters and 4 KB, and above
# either it re-parsed the statement on every registration (0.3–0.5 ms here). The inner
# json_populate_record reads the directive's row; the outer one sets only the number the statement took.
_REGISTRATION_CTES = (
    "WITH next_number AS (INSERT INTO arrival_counters AS c (organisation, year, last_number) "
    "VALUES (:counter_organisation, :counter_year, 1) "
    "ON CONFLICT (organisation, year) DO UPDATE SET last_number = c.last_number + 1 "
    "RETURNING c.last_number),\n"
    "numbered AS (INSERT INTO directives SELECT d.* FROM next_number, jsonb_populate_record("
    "json_populate_record(NULL::directives, CAST(:directive AS json)), "
    "jsonb_build_object('arrival_number', next_number.last_number)) AS d RETURNING arrival_number),\n"
    "attached AS (INSERT INTO attachments SELECT a.* "
    "FROM json_populate_recordset(NULL::attachments, CAST(:attachments AS json)) AS a),\n"
    "queued AS (INSERT INTO outbox (message_id, exchange, routing_key, body, headers, created_at, attempts) "
    "SELECT :o_message_id, :o_exchange, :o_routing_key, convert_to(CAST(jsonb_set("
    "CAST(convert_from(:o_body, 'UTF8') AS jsonb), '{payload,arrival_number}', "
    "to_jsonb(numbered.arrival_number)) AS text), 'UTF8'), CAST(:o_headers AS json), "
    "CAST(:o_created_at AS timestamptz), 0 FROM numbered)"
)
_REGISTRATION_ANSWER = "\nSELECT arrival_number FROM numbered"


def registration_postgresql(*, statuses: bool) -> sa.TextClause:
    """PostgreSQL: a whole registration as one statement, answering the arrival number.

    The counter UPSERT, the numbered directive, its attachment rows and its outbox row are data-modifying
    CTEs of one statement, which is atomic on its own. Run in autocommit it is one round trip where BEGIN,
    three INSERTs and COMMIT were five, and the counter row stays locked for that statement only. The
    event's body is sent with any arrival number in it, and the statement writes the number it took at
    `payload.arrival_number` (jsonb_set): the event and the row cannot disagree.

    Parameters: `counter_organisation`, `counter_year`; `directive`, the directive's row as JSON text (its
    `arrival_number` is the one the statement takes); `attachments`, a JSON array of attachment rows;
    `o_message_id`, `o_exchange`, `o_routing_key`, `o_body` (bytes), `o_headers` (JSON text) and
    `o_created_at` for the outbox row. With `statuses`, also REGISTRATION_STATUSES_POSTGRESQL's.
    """
    if not statuses:
        return sa.text(_REGISTRATION_CTES + _REGISTRATION_ANSWER)
    return sa.text(_REGISTRATION_CTES + ",\n" + REGISTRATION_STATUSES_POSTGRESQL + _REGISTRATION_ANSWER)
