"""make_engine, transaction helpers and programmatic migrations on SQLite and PostgreSQL."""

import threading
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from shared.db import json_rows, json_rows_insert, make_engine, run_migrations, session_scope, transaction
from sqlalchemy.orm import sessionmaker

META = sa.MetaData()
NOTES = sa.Table("notes", META, sa.Column("id", sa.Integer, primary_key=True), sa.Column("text", sa.Text))


def test_sqlite_engine_has_wal_foreign_keys_and_busy_timeout(tmp_path: Path):
    engine = make_engine(f"sqlite:///{tmp_path / 'nested' / 'dir' / 'svc.db'}")
    assert (tmp_path / "nested" / "dir").is_dir()
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
    engine.dispose()


def test_sqlite_engine_is_usable_from_other_threads(tmp_path: Path):
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    META.create_all(engine)
    errors = []

    def write(i: int) -> None:
        try:
            with transaction(engine) as conn:
                conn.execute(sa.insert(NOTES).values(text=f"ghi chú {i}"))
        except Exception as exc:  # noqa: BLE001 - collected and asserted empty below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(NOTES)).scalar() == 8


def test_in_memory_sqlite_is_one_database_for_all_connections():
    engine = make_engine("sqlite://")
    META.create_all(engine)
    with transaction(engine) as conn:
        conn.execute(sa.insert(NOTES).values(text="một"))
    seen = []
    t = threading.Thread(
        target=lambda: seen.append(engine.connect().execute(sa.select(NOTES.c.text)).scalar())
    )
    t.start()
    t.join()
    assert seen == ["một"]


def test_transaction_rolls_back_on_error(db_url: str):
    engine = make_engine(db_url)
    META.create_all(engine)
    with pytest.raises(RuntimeError), transaction(engine) as conn:
        conn.execute(sa.insert(NOTES).values(text="lost"))
        raise RuntimeError("boom")
    with transaction(engine) as conn:
        conn.execute(sa.insert(NOTES).values(text="Quyết định số 15/QĐ-BNV"))
    with engine.connect() as conn:
        assert conn.execute(sa.select(NOTES.c.text)).scalars().all() == ["Quyết định số 15/QĐ-BNV"]
    engine.dispose()


def test_session_scope_commits_or_rolls_back(db_url: str):
    engine = make_engine(db_url)
    META.create_all(engine)
    factory = sessionmaker(engine)
    with session_scope(factory) as session:
        session.execute(sa.insert(NOTES).values(text="kept"))
    with pytest.raises(ValueError), session_scope(factory) as session:
        session.execute(sa.insert(NOTES).values(text="dropped"))
        raise ValueError
    with engine.connect() as conn:
        assert conn.execute(sa.select(NOTES.c.text)).scalars().all() == ["kept"]
    engine.dispose()


def _pings(engine) -> list[int]:
    calls: list[int] = []
    original = engine.dialect.do_ping

    def counting(dbapi_connection) -> bool:
        calls.append(1)
        return original(dbapi_connection)

    engine.dialect.do_ping = counting
    return calls


def _backend_pid(engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one())


@pytest.mark.integration
def test_postgresql_engine_pings_only_a_connection_back_from_idle(pg_url: str):
    engine = make_engine(pg_url, ping_after_idle=0.3)
    pings = _pings(engine)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SHOW server_encoding")).scalar() == "UTF8"
    for _ in range(5):  # back to back, as request after request: no ping
        _backend_pid(engine)
    assert pings == []
    time.sleep(0.4)
    _backend_pid(engine)
    assert len(pings) == 1
    engine.dispose()


@pytest.mark.integration
def test_a_connection_the_server_dropped_while_idle_is_replaced_at_checkout(pg_url: str):
    engine = make_engine(pg_url, ping_after_idle=0.1)
    first = _backend_pid(engine)
    admin = make_engine(pg_url)
    with admin.begin() as conn:
        conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": first})
    # pg_terminate_backend only signals the backend: wait (bounded) until it is gone, and at least the
    # idle time after which a checkout pings.
    idle_enough = time.monotonic() + 0.2
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with admin.connect() as conn:
            alive = sa.text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid")
            if conn.execute(alive, {"pid": first}).scalar_one() == 0 and time.monotonic() >= idle_enough:
                break
        time.sleep(0.02)
    # The ping at checkout finds the dead connection; the pool connects afresh and the caller never knows.
    second = _backend_pid(engine)
    assert second != first
    admin.dispose()
    engine.dispose()


ENV_PY = """
from alembic import context
import sqlalchemy as sa

connection = context.config.attributes.get("connection")
context.configure(connection=connection, target_metadata=None)
with context.begin_transaction():
    context.run_migrations()
"""

VERSION = """
from alembic import op
import sqlalchemy as sa

revision = "0001"
down_revision = None


def upgrade():
    op.create_table("greetings", sa.Column("id", sa.Integer, primary_key=True), sa.Column("text", sa.Text))
    op.execute("INSERT INTO greetings (text) VALUES ('Xin chào')")


def downgrade():
    op.drop_table("greetings")
"""


def test_run_migrations_upgrades_to_head_once(db_url: str, tmp_path: Path):
    scripts = tmp_path / "migrations"
    (scripts / "versions").mkdir(parents=True)
    (scripts / "env.py").write_text(ENV_PY, encoding="utf-8")
    (scripts / "script.py.mako").write_text("", encoding="utf-8")
    (scripts / "versions" / "0001_greetings.py").write_text(VERSION, encoding="utf-8")
    engine = make_engine(db_url)
    run_migrations(engine, scripts)
    run_migrations(engine, str(scripts))  # already at head: nothing runs twice
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT text FROM greetings")).scalars().all() == ["Xin chào"]
        assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar() == "0001"
    engine.dispose()


# --- json_rows_insert: many rows as one statement on PostgreSQL ---------------------------------------

ROWS_META = sa.MetaData()
LEDGER = sa.Table(
    "ledger",
    ROWS_META,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("doc", sa.JSON, nullable=True),
    sa.Column("blob", sa.LargeBinary, nullable=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("day", sa.Date, nullable=True),
    sa.Column("count", sa.Integer, nullable=True),
    sa.Column("done", sa.Boolean, nullable=True),
)
LEDGER_COLUMNS = ["title", "doc", "blob", "at", "day", "count", "done"]


@pytest.mark.integration
def test_json_rows_insert_writes_every_row_typed_in_array_order(pg_url: str):
    engine = make_engine(pg_url)
    ROWS_META.create_all(engine)
    at = datetime(2026, 11, 30, 8, 15, 1, 123456, tzinfo=UTC)
    rows = [
        {
            "title": f"Kế hoạch số {i}/KH-BCĐ — “khẩn”\\n",
            # Key order and spacing are the caller's: a JSON column keeps the text it was given.
            "doc": {"đơn_vị": "UBND huyện", "a": [i, None], "b": {"z": 1, "y": 2}},
            "blob": bytes(range(256)) + "ấn".encode(),
            "at": at + timedelta(seconds=i),
            "day": date(2026, 12, 1),
            "count": i,
            "done": i % 2 == 0,
        }
        for i in range(60)
    ]
    rows.append({"title": "chỉ tiêu đề", "doc": None, "blob": None, "at": None, "day": None, "count": None})
    with engine.begin() as conn:
        conn.execute(json_rows_insert(LEDGER, "rows", LEDGER_COLUMNS), {"rows": json_rows(rows)})
    with engine.connect() as conn:
        stored = conn.execute(sa.select(LEDGER).order_by(LEDGER.c.id)).all()
        texts = conn.execute(sa.text("SELECT doc::text FROM ledger ORDER BY id LIMIT 1")).scalar_one()
        null_doc = conn.execute(
            sa.text("SELECT doc IS NULL FROM ledger ORDER BY id DESC LIMIT 1")
        ).scalar_one()
    engine.dispose()
    assert [r.title for r in stored] == [r["title"] for r in rows]  # ids drawn in array order
    first = stored[0]
    assert (first.doc, bytes(first.blob), first.at, first.day, first.count, first.done) == (
        rows[0]["doc"],
        rows[0]["blob"],
        at,
        date(2026, 12, 1),
        0,
        True,
    )
    assert texts == '{"đơn_vị":"UBND huyện","a":[0,null],"b":{"z":1,"y":2}}'
    assert [r.count for r in stored[:60]] == list(range(60)) and stored[1].done is False
    last = stored[-1]
    # A JSON null and a missing field are both SQL NULL.
    assert (last.doc, last.blob, last.at, last.day, last.count, last.done) == (None,) * 6
    assert null_doc is True


@pytest.mark.integration
def test_json_rows_insert_is_one_statement_that_fails_whole(pg_url: str):
    engine = make_engine(pg_url)
    ROWS_META.create_all(engine)
    rows = [{"title": "đúng"}, {"title": None}]  # the second breaks NOT NULL
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
        conn.execute(json_rows_insert(LEDGER, "rows", LEDGER_COLUMNS), {"rows": json_rows(rows)})
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(LEDGER)).scalar_one() == 0
    engine.dispose()


def test_json_rows_refuses_a_value_json_cannot_carry():
    with pytest.raises(TypeError, match="set"):
        json_rows([{"title": {1, 2}}])
