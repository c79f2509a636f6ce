"""The arrival counter: takes the next số đến inside the caller's transaction (gapless, never repeated)."""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.sql.selectable import CTE

from intake.adapters.tables import arrival_counters
from intake.domain.arrival import ArrivalSeries, next_arrival_number

# Constants written into the SQL rather than sent as parameters: psycopg caches its parsing of a statement
# only while it has at most 50 parameters (and 4 KB of text), and a whole registration is close to that.
ONE = sa.literal_column("1", sa.Integer)
UTF8 = sa.literal_column("'UTF8'", sa.Text)
NUMBER_PATH = sa.literal_column("'{payload,arrival_number}'::text[]")


def numbered_insert_postgresql(table: sa.Table, number_column: str) -> sa.Insert:
    """PostgreSQL: one INSERT INTO `table` whose `number_column` is the series' next number.

    The counter UPSERT runs as a data-modifying CTE of the same statement, so taking the number and
    writing the row that carries it cost one round trip while the counter row is locked. Parameters:
    `counter_organisation`, `counter_year` and one per other column of `table`, named after it.
    """
    counter = arrival_counters
    upsert = (
        postgresql.insert(counter)
        .values(
            organisation=sa.bindparam("counter_organisation", type_=counter.c.organisation.type),
            year=sa.bindparam("counter_year", type_=counter.c.year.type),
            last_number=ONE,
        )
        .on_conflict_do_update(
            index_elements=[counter.c.organisation, counter.c.year],
            set_={"last_number": counter.c.last_number + ONE},
        )
        .returning(counter.c.last_number)
        .cte("next_number")
    )
    values = [
        upsert.c.last_number if column.name == number_column else sa.bindparam(column.name, type_=column.type)
        for column in table.columns
    ]
    return (
        sa.insert(table)
        .from_select([column.name for column in table.columns], sa.select(*values))
        .returning(table.c[number_column])
    )


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


def registration_postgresql(
    directives: sa.Table,
    attachments: sa.Table,
    outbox: sa.Table,
    extra: Callable[[CTE], list[CTE]] | None = None,
) -> sa.Select[tuple[int]]:
    """PostgreSQL: a whole registration as one statement, answering the arrival number.

    The numbered directive (numbered_insert_postgresql), its attachment rows and its outbox row are
    data-modifying CTEs of one statement, which is atomic on its own. Run in autocommit it is one round
    trip where BEGIN, three INSERTs and COMMIT were five, and the counter row stays locked for that
    statement only. The event's body is sent with any arrival number in it, and the statement writes the
    number it took at `payload.arrival_number` (jsonb_set): the event and the row cannot disagree.

    Parameters: those of numbered_insert_postgresql; `attachments`, a JSON array of attachment rows; and
    `o_message_id`, `o_exchange`, `o_routing_key`, `o_body`, `o_headers`, `o_created_at` for the outbox row.
    `extra` adds more data-modifying CTEs that read the numbered directive (the registration's statuses).
    """
    numbered = numbered_insert_postgresql(directives, "arrival_number").cte("numbered")
    names = [column.name for column in attachments.columns]
    # Every attachment row in one JSON parameter: one statement (and one cached parse) for any count.
    rows = (
        sa.func.jsonb_to_recordset(sa.bindparam("attachments", type_=postgresql.JSONB))
        .table_valued(*[sa.column(name, attachments.c[name].type) for name in names])
        .render_derived(name="attachment", with_types=True)
    )
    attached = sa.insert(attachments).from_select(names, sa.select(*[rows.c[name] for name in names]))
    body_json = sa.cast(
        sa.func.convert_from(sa.bindparam("o_body", type_=outbox.c.body.type), UTF8), postgresql.JSONB
    )
    body = sa.func.convert_to(
        sa.cast(
            sa.func.jsonb_set(body_json, NUMBER_PATH, sa.func.to_jsonb(numbered.c.arrival_number)), sa.Text
        ),
        UTF8,
    )
    queued = sa.select(
        sa.bindparam("o_message_id", type_=outbox.c.message_id.type),
        sa.bindparam("o_exchange", type_=outbox.c.exchange.type),
        sa.bindparam("o_routing_key", type_=outbox.c.routing_key.type),
        body,
        sa.bindparam("o_headers", type_=outbox.c.headers.type),
        sa.bindparam("o_created_at", type_=outbox.c.created_at.type),
        sa.literal_column("0", sa.Integer),
    ).select_from(numbered)
    columns = ["message_id", "exchange", "routing_key", "body", "headers", "created_at", "attempts"]
    queue = sa.insert(outbox).from_select(columns, queued)
    more = extra(numbered) if extra is not None else []
    return sa.select(numbered.c.arrival_number).add_cte(attached.cte("attached"), queue.cte("queued"), *more)
