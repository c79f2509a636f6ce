"""The arrival counter: takes the next số đến inside the caller's transaction (gapless, never repeated)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from intake.adapters.tables import arrival_counters
from intake.domain.arrival import ArrivalSeries, next_arrival_number


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
            last_number=1,
        )
        .on_conflict_do_update(
            index_elements=[counter.c.organisation, counter.c.year],
            set_={"last_number": counter.c.last_number + 1},
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
